//! What the user typed, turned into what the client should do.
//!
//! A plain line is a chat message; a line starting with `/` is a command. Parsing is a pure
//! function from a line to an [`Input`], so every rule here is unit-tested without a network.

use chat_core::Request;

/// What one line of user input asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Send this request to the server.
    Send(Request),
    /// Print the list of commands (answered locally).
    Help,
    /// Leave: send `quit`, wait for `bye`, exit 0.
    Quit,
    /// Nothing to do: the line was empty (or only spaces).
    Nothing,
    /// The line is not a valid command; the text says why (printed locally, nothing is sent).
    Invalid(String),
}

/// The command list that `/help` prints, one entry a line.
pub const HELP: &[&str] = &[
    "commands:",
    "  TEXT             send TEXT to everyone in your room",
    "  /msg NICK TEXT   send TEXT to NICK only (any room)",
    "  /join ROOM       move to ROOM (it is created if it does not exist)",
    "  /nick NAME       change your nickname",
    "  /users [ROOM]    list the users of ROOM (default: your room)",
    "  /rooms           list the rooms and how many users each has",
    "  /quit            leave the chat",
    "  /help            this list",
    "  //TEXT           send the message /TEXT (a message that starts with a slash)",
];

/// Parses one line of input (its `\n` and a `\r` before it, if any, already removed or not).
pub fn parse_input(line: &str) -> Input {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    // Empty input lines are ignored, and so are lines of spaces: the server would refuse an
    // empty message, and a line of blanks is almost always a stray keystroke.
    if line.trim().is_empty() {
        return Input::Nothing;
    }
    // `//text` escapes a message that starts with a slash.
    if let Some(escaped) = line.strip_prefix("//") {
        return message(format!("/{escaped}"));
    }
    let Some(command_line) = line.strip_prefix('/') else {
        return message(line.to_string());
    };
    let (name, rest) = match command_line.split_once(char::is_whitespace) {
        Some((name, rest)) => (name, rest.trim_start()),
        None => (command_line, ""),
    };
    let words: Vec<&str> = rest.split_whitespace().collect();
    match name {
        "msg" => match rest.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Input::Send(Request::Private {
                to: to.to_string(),
                content: text.trim_start().to_string(),
                id: None,
            }),
            _ => usage("/msg NICK TEXT"),
        },
        "join" => match words.as_slice() {
            [room] => Input::Send(Request::JoinRoom {
                room: room.to_string(),
            }),
            _ => usage("/join ROOM"),
        },
        "nick" => match words.as_slice() {
            [nickname] => Input::Send(Request::Nick {
                nickname: nickname.to_string(),
            }),
            _ => usage("/nick NAME"),
        },
        "users" => match words.as_slice() {
            [] => Input::Send(Request::ListUsers { room: None }),
            [room] => Input::Send(Request::ListUsers {
                room: Some(room.to_string()),
            }),
            _ => usage("/users [ROOM]"),
        },
        "rooms" if words.is_empty() => Input::Send(Request::ListRooms),
        "rooms" => usage("/rooms"),
        "quit" => Input::Quit,
        "help" => Input::Help,
        _ => Input::Invalid(format!("unknown command /{name} (type /help for the list)")),
    }
}

fn message(content: String) -> Input {
    Input::Send(Request::Message { content, id: None })
}

fn usage(form: &str) -> Input {
    Input::Invalid(format!("usage: {form}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(line: &str) -> Request {
        match parse_input(line) {
            Input::Send(request) => request,
            other => panic!("{line:?} should send a request, got {other:?}"),
        }
    }

    fn invalid(line: &str) -> String {
        match parse_input(line) {
            Input::Invalid(why) => why,
            other => panic!("{line:?} should be invalid, got {other:?}"),
        }
    }

    /// A plain line is sent as a message, exactly as typed (minus the line ending).
    #[test]
    fn plain_line_is_a_message() {
        assert_eq!(
            send("  hello, world  \r\n"),
            Request::Message {
                content: "  hello, world  ".into(),
                id: None
            }
        );
        assert_eq!(
            send("héllo 🦀"),
            Request::Message {
                content: "héllo 🦀".into(),
                id: None
            }
        );
    }

    /// Empty lines and lines of blanks send nothing.
    #[test]
    fn empty_lines_are_ignored() {
        assert_eq!(parse_input(""), Input::Nothing);
        assert_eq!(parse_input("\n"), Input::Nothing);
        assert_eq!(parse_input("\r\n"), Input::Nothing);
        assert_eq!(parse_input("   \t "), Input::Nothing);
    }

    /// `/msg NICK TEXT` is a private message; the text keeps its inner spaces.
    #[test]
    fn msg_is_private() {
        assert_eq!(
            send("/msg bob  hi there  you"),
            Request::Private {
                to: "bob".into(),
                content: "hi there  you".into(),
                id: None
            }
        );
        assert_eq!(invalid("/msg"), "usage: /msg NICK TEXT");
        assert_eq!(invalid("/msg bob"), "usage: /msg NICK TEXT");
        assert_eq!(invalid("/msg bob   "), "usage: /msg NICK TEXT");
    }

    /// `/join`, `/nick`, `/users`, `/rooms` map to their requests and check their arguments.
    #[test]
    fn room_and_nick_commands() {
        assert_eq!(
            send("/join rust"),
            Request::JoinRoom {
                room: "rust".into()
            }
        );
        assert_eq!(
            send("/nick 小明"),
            Request::Nick {
                nickname: "小明".into()
            }
        );
        assert_eq!(send("/users"), Request::ListUsers { room: None });
        assert_eq!(
            send("/users lobby"),
            Request::ListUsers {
                room: Some("lobby".into())
            }
        );
        assert_eq!(send("/rooms"), Request::ListRooms);
        assert_eq!(invalid("/join"), "usage: /join ROOM");
        assert_eq!(invalid("/join two words"), "usage: /join ROOM");
        assert_eq!(invalid("/nick"), "usage: /nick NAME");
        assert_eq!(invalid("/users a b"), "usage: /users [ROOM]");
        assert_eq!(invalid("/rooms now"), "usage: /rooms");
    }

    /// `/quit` and `/help` are handled by the client itself.
    #[test]
    fn quit_and_help() {
        assert_eq!(parse_input("/quit"), Input::Quit);
        assert_eq!(parse_input("/help\n"), Input::Help);
        assert!(HELP.iter().any(|line| line.contains("/msg NICK TEXT")));
    }

    /// An unknown command is a local error, never sent as a message.
    #[test]
    fn unknown_command_is_a_local_error() {
        assert_eq!(
            invalid("/dance now"),
            "unknown command /dance (type /help for the list)"
        );
        assert_eq!(invalid("/"), "unknown command / (type /help for the list)");
    }

    /// `//` escapes a message that starts with a slash.
    #[test]
    fn double_slash_sends_a_slash_message() {
        assert_eq!(
            send("//shrug"),
            Request::Message {
                content: "/shrug".into(),
                id: None
            }
        );
    }
}
