//! Turning server events (and the client's own notices) into readable lines.
//!
//! Every line starts with the local time, `[10:30:00]`. Chat lines look like IRC:
//! `<alice> hello` for the room, `*bob* -> alice: hi` for a private message; things that
//! happened are notices after `--`, errors come after `!!`.
//!
//! The functions take the current time as an argument, generic over the time zone, so tests pin
//! it (in UTC) and the binary passes [`chrono::Local::now`]. Messages carry the server's clock
//! (`ts`, milliseconds since the epoch) and are stamped with *that* time, shown in the same zone:
//! when they were said, not when we happened to read them.
//!
//! Everything the server sends is text we did not write: control characters (a newline, an
//! ANSI escape) are shown escaped, so a peer cannot fake a line or recolour the terminal.

use chat_core::{Event, RoomInfo};
use chrono::{DateTime, TimeZone};
use std::borrow::Cow;
use std::fmt::Display;

/// The line to print for `event`, or `None` for events the user need not see (`pong`: the
/// client's own keepalive and end-of-input pings).
pub fn render_event<Tz>(event: &Event, now: &DateTime<Tz>) -> Option<String>
where
    Tz: TimeZone,
    Tz::Offset: Display,
{
    let line = match event {
        Event::Broadcast {
            from, content, ts, ..
        } => format!(
            "{} <{}> {}",
            stamp(&at_server_time(*ts, now)),
            clean(from),
            clean(content)
        ),
        Event::Private {
            from,
            to,
            content,
            ts,
            ..
        } => format!(
            "{} *{}* -> {}: {}",
            stamp(&at_server_time(*ts, now)),
            clean(from),
            clean(to),
            clean(content)
        ),
        Event::Welcome {
            nickname,
            room,
            users,
        } => notice(
            &format!(
                "welcome {}! you are in {} with: {}",
                clean(nickname),
                clean(room),
                list(users)
            ),
            now,
        ),
        Event::Joined { nickname, room } => {
            notice(&format!("{} joined {}", clean(nickname), clean(room)), now)
        }
        Event::Left { nickname, room } => {
            notice(&format!("{} left {}", clean(nickname), clean(room)), now)
        }
        Event::Renamed { from, to, .. } => notice(
            &format!("{} is now known as {}", clean(from), clean(to)),
            now,
        ),
        Event::Users { room, users } => {
            notice(&format!("users in {}: {}", clean(room), list(users)), now)
        }
        Event::Rooms { rooms } => notice(&format!("rooms: {}", room_list(rooms)), now),
        Event::Room { room, users } => notice(
            &format!("you are now in {} with: {}", clean(room), list(users)),
            now,
        ),
        Event::Bye => notice("bye", now),
        Event::Error { code, message } => {
            problem(&format!("error {code}: {}", clean(message)), now)
        }
        Event::Pong { .. } => return None,
    };
    Some(line)
}

/// A notice from the client or about the chat: `[10:30:00] -- TEXT`.
pub fn notice<Tz>(text: &str, now: &DateTime<Tz>) -> String
where
    Tz: TimeZone,
    Tz::Offset: Display,
{
    format!("{} -- {text}", stamp(now))
}

/// Something went wrong: `[10:30:00] !! TEXT`.
pub fn problem<Tz>(text: &str, now: &DateTime<Tz>) -> String
where
    Tz: TimeZone,
    Tz::Offset: Display,
{
    format!("{} !! {text}", stamp(now))
}

/// `[HH:MM:SS]` in the zone of `time`.
fn stamp<Tz>(time: &DateTime<Tz>) -> String
where
    Tz: TimeZone,
    Tz::Offset: Display,
{
    time.format("[%H:%M:%S]").to_string()
}

/// The server's `ts` shown in the zone of `now`. A `ts` out of chrono's range (a buggy or
/// hostile server) falls back to `now` rather than failing.
fn at_server_time<Tz: TimeZone>(ts: u64, now: &DateTime<Tz>) -> DateTime<Tz> {
    i64::try_from(ts)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .map(|utc| utc.with_timezone(&now.timezone()))
        .unwrap_or_else(|| now.clone())
}

/// Control characters escaped (`\n`, `\u{1b}`), everything else as is.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "nobody".to_string();
    }
    names
        .iter()
        .map(|name| clean(name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn room_list(rooms: &[RoomInfo]) -> String {
    if rooms.is_empty() {
        return "none".to_string();
    }
    rooms
        .iter()
        .map(|room| format!("{} ({})", clean(&room.name), room.users))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::{ErrorCode, Id};
    use chrono::{FixedOffset, Utc};

    /// 10:30:00 UTC on 2024-05-01.
    const TEN_THIRTY_MS: u64 = 1_714_559_400_000;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(TEN_THIRTY_MS as i64).expect("in range")
    }

    fn render(event: Event) -> String {
        render_event(&event, &now()).expect("a visible event")
    }

    /// Room messages read `[time] <from> content`, stamped with the server's `ts`.
    #[test]
    fn broadcast_line() {
        let line = render(Event::Broadcast {
            from: "alice".into(),
            room: "lobby".into(),
            content: "hello".into(),
            ts: TEN_THIRTY_MS - 5_000,
            id: Some(Id::Int(3)),
        });
        assert_eq!(line, "[10:29:55] <alice> hello");
    }

    /// Private messages read `[time] *from* -> to: content`.
    #[test]
    fn private_line() {
        let line = render(Event::Private {
            from: "bob".into(),
            to: "alice".into(),
            content: "hi".into(),
            ts: TEN_THIRTY_MS,
            id: None,
        });
        assert_eq!(line, "[10:30:00] *bob* -> alice: hi");
    }

    /// The server's `ts` is shown in the local zone, like every other stamp.
    #[test]
    fn message_time_uses_the_local_zone() {
        let paris = FixedOffset::east_opt(2 * 3600).expect("valid offset");
        let event = Event::Broadcast {
            from: "a".into(),
            room: "r".into(),
            content: "x".into(),
            ts: TEN_THIRTY_MS,
            id: None,
        };
        let line = render_event(&event, &now().with_timezone(&paris)).expect("visible");
        assert_eq!(line, "[12:30:00] <a> x");
    }

    /// Joins, leaves and renames are notices.
    #[test]
    fn membership_notices() {
        let joined = render(Event::Joined {
            nickname: "bob".into(),
            room: "lobby".into(),
        });
        assert_eq!(joined, "[10:30:00] -- bob joined lobby");
        let left = render(Event::Left {
            nickname: "bob".into(),
            room: "lobby".into(),
        });
        assert_eq!(left, "[10:30:00] -- bob left lobby");
        let renamed = render(Event::Renamed {
            from: "bob".into(),
            to: "robert".into(),
            room: "lobby".into(),
        });
        assert_eq!(renamed, "[10:30:00] -- bob is now known as robert");
    }

    /// Welcome, room, users and rooms replies list their contents.
    #[test]
    fn lists() {
        let welcome = render(Event::Welcome {
            nickname: "alice".into(),
            room: "lobby".into(),
            users: vec!["alice".into(), "bob".into()],
        });
        assert_eq!(
            welcome,
            "[10:30:00] -- welcome alice! you are in lobby with: alice, bob"
        );
        let room = render(Event::Room {
            room: "rust".into(),
            users: vec!["alice".into()],
        });
        assert_eq!(room, "[10:30:00] -- you are now in rust with: alice");
        let users = render(Event::Users {
            room: "void".into(),
            users: vec![],
        });
        assert_eq!(users, "[10:30:00] -- users in void: nobody");
        let rooms = render(Event::Rooms {
            rooms: vec![
                RoomInfo {
                    name: "lobby".into(),
                    users: 2,
                },
                RoomInfo {
                    name: "rust".into(),
                    users: 1,
                },
            ],
        });
        assert_eq!(rooms, "[10:30:00] -- rooms: lobby (2), rust (1)");
        let none = render(Event::Rooms { rooms: vec![] });
        assert_eq!(none, "[10:30:00] -- rooms: none");
    }

    /// Errors show their code and message after `!!`.
    #[test]
    fn error_line() {
        let line = render(Event::Error {
            code: ErrorCode::NicknameTaken,
            message: "alice is taken".into(),
        });
        assert_eq!(line, "[10:30:00] !! error nickname_taken: alice is taken");
    }

    /// `pong` is the client's own business and prints nothing; `bye` is a notice.
    #[test]
    fn pong_is_silent_and_bye_is_a_notice() {
        assert_eq!(render_event(&Event::Pong { id: None }, &now()), None);
        assert_eq!(render(Event::Bye), "[10:30:00] -- bye");
    }

    /// A peer cannot inject a fake line or a terminal escape: control characters are escaped.
    #[test]
    fn control_characters_are_escaped() {
        let line = render(Event::Broadcast {
            from: "mallory".into(),
            room: "lobby".into(),
            content: "hi\n[10:30:00] <alice> send money\u{1b}[31m".into(),
            ts: TEN_THIRTY_MS,
            id: None,
        });
        assert_eq!(
            line,
            "[10:30:00] <mallory> hi\\n[10:30:00] <alice> send money\\u{1b}[31m"
        );
        assert!(matches!(clean("plain 🦀"), Cow::Borrowed(_)));
    }

    /// A `ts` beyond chrono's range falls back to the current time instead of failing.
    #[test]
    fn absurd_timestamp_falls_back_to_now() {
        let line = render(Event::Broadcast {
            from: "a".into(),
            room: "r".into(),
            content: "x".into(),
            ts: u64::MAX,
            id: None,
        });
        assert_eq!(line, "[10:30:00] <a> x");
    }

    /// Local notices and problems share the stamp and the markers.
    #[test]
    fn local_lines() {
        assert_eq!(notice("reconnecting", &now()), "[10:30:00] -- reconnecting");
        assert_eq!(problem("oops", &now()), "[10:30:00] !! oops");
    }
}
