//! Reading a lesson's ```` ```sh ```` block as the commands a learner types, with the
//! annotations that say what the learner should see (the convention is in `lessons/README.md`).

use crate::catalog::Catalog;

/// One command line of a ```` ```sh ```` block, with its trailing-comment annotations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    /// 1-based line number in the lesson.
    pub line: usize,
    /// The command as written, without the trailing comment and the trailing `&`.
    pub text: String,
    /// `# expect: TEXT` (and `# fails: TEXT`): the output must contain each TEXT.
    pub expect: Vec<String>,
    /// `# fails`: the command must exit non-zero (a server: exit before `listening on`).
    pub fails: bool,
    /// `# interactive`: it waits for a person; it must start and keep running, then is stopped.
    pub interactive: bool,
    /// `# silent`: it must print nothing.
    pub silent: bool,
    /// A trailing `&`: it runs in the background until the end of its block.
    pub background: bool,
    /// `# threshold`: a performance check (`jq -e '.p99 < X'`); the test runs it but accepts
    /// exit status 1 (threshold missed), because speed on a shared test machine proves nothing.
    pub threshold: bool,
}

/// What the test does with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start a server and keep it running for the rest of the lesson.
    Server {
        command: Command,
        /// The server binary the line starts.
        bin: String,
        /// The port the lesson uses (`--addr`, else the default 8888).
        lesson_port: u16,
    },
    /// `cargo build/test/...`: not run (the test builds what it needs), but every `-p PACKAGE`
    /// must be a package of the workspace.
    Cargo {
        command: Command,
        packages: Vec<String>,
    },
    /// Setup the test does itself (`export PATH=...target/release...`, `cd`).
    Setup { command: Command },
    /// Anything else: run with `sh -c`, the binaries on `PATH`, the addresses substituted.
    Shell { command: Command },
}

impl Step {
    pub fn command(&self) -> &Command {
        match self {
            Step::Server { command, .. }
            | Step::Cargo { command, .. }
            | Step::Setup { command }
            | Step::Shell { command } => command,
        }
    }
}

/// The port a server listens on when the lesson gives no `--addr` (`PROTOCOL.md`'s default).
pub const DEFAULT_PORT: u16 = 8888;

/// Parses the lines of a ```` ```sh ```` block (`first_line` = line number of its first line).
pub fn parse_block(lines: &[String], first_line: usize) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in lines.iter().enumerate() {
        let number = first_line + i;
        let (start, mut text) = match pending.take() {
            Some((start, so_far)) => (start, so_far + " " + raw.trim()),
            None => (number, raw.trim().to_string()),
        };
        if let Some(stripped) = text.strip_suffix('\\') {
            text = stripped.trim_end().to_string();
            pending = Some((start, text));
            continue;
        }
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        commands.push(parse_line(start, &text));
    }
    if let Some((start, text)) = pending {
        commands.push(parse_line(start, &text));
    }
    commands
}

/// One logical command line: split off the trailing comment and read its annotations.
fn parse_line(line: usize, full: &str) -> Command {
    let (text, comment) = split_comment(full);
    let mut command = Command {
        line,
        text: text.trim().to_string(),
        ..Command::default()
    };
    if let Some(stripped) = command.text.strip_suffix('&') {
        if !stripped.ends_with('&') {
            command.text = stripped.trim_end().to_string();
            command.background = true;
        }
    }
    for part in comment.unwrap_or("").split(';') {
        let part = part.trim();
        if let Some(rest) = part.strip_prefix("expect:") {
            command.expect.push(rest.trim().to_string());
        } else if part == "fails" {
            command.fails = true;
        } else if let Some(rest) = part.strip_prefix("fails:") {
            command.fails = true;
            command.expect.push(rest.trim().to_string());
        } else if part == "interactive" {
            command.interactive = true;
        } else if part == "silent" {
            command.silent = true;
        } else if part == "threshold" {
            command.threshold = true;
        }
        // Anything else is a remark for the reader.
    }
    command
}

/// Splits `cmd  # comment` at the first `#` that starts a word outside quotes.
pub fn split_comment(line: &str) -> (&str, Option<&str>) {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' && q == '"' {
                escaped = true;
            }
        } else if c == '\\' {
            escaped = true;
        } else if c == '\'' || c == '"' {
            quote = Some(c);
        } else if c == '#' && previous.is_whitespace() {
            return (&line[..i], Some(&line[i + 1..]));
        }
        previous = c;
    }
    (line, None)
}

/// Whether `c` occurs outside quotes (e.g. a `|` that makes a pipeline).
pub fn has_unquoted(text: &str, wanted: char) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            escaped = false;
        } else if let Some(q) = quote {
            if c == q {
                quote = None;
            }
        } else if c == '\\' {
            escaped = true;
        } else if c == '\'' || c == '"' {
            quote = Some(c);
        } else if c == wanted {
            return true;
        }
    }
    false
}

/// Replaces every `cargo run [OPTIONS] [--]` with the binary it runs, so that
/// `cargo run --release -p chat-epoll -- --trigger edge` reads `chat-epoll --trigger edge`
/// (and `cargo run -p chat-async --example hand_written_future` reads `hand_written_future`:
/// the examples folder is on the lesson's `PATH` too).
pub fn rewrite_cargo_run(text: &str, catalog: &Catalog) -> Result<String, String> {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "cargo" && words.get(i + 1) == Some(&"run") {
            let (bin, next) = parse_cargo_run(&words[i + 2..], catalog)?;
            out.push(bin);
            i += 2 + next;
        } else {
            out.push(words[i].to_string());
            i += 1;
        }
    }
    Ok(out.join(" "))
}

/// Reads `cargo run`'s own options; returns the binary and how many words they took.
fn parse_cargo_run(words: &[&str], catalog: &Catalog) -> Result<(String, usize), String> {
    let mut package: Option<&str> = None;
    let mut bin: Option<&str> = None;
    let mut example: Option<&str> = None;
    let mut i = 0;
    while i < words.len() {
        match words[i] {
            "" | "--release" | "-q" | "--quiet" => i += 1,
            "-p" | "--package" => {
                package = words.get(i + 1).copied();
                i += 2;
            }
            "--bin" => {
                bin = words.get(i + 1).copied();
                i += 2;
            }
            "--example" => {
                example = words.get(i + 1).copied();
                i += 2;
            }
            "--" => {
                i += 1;
                break;
            }
            w if w.starts_with('-') => return Err(format!("unknown `cargo run` option {w}")),
            _ => break, // end of the command (`cargo run -p x | ...` has no `--`)
        }
    }
    let package = package.ok_or("`cargo run` without `-p PACKAGE`")?;
    if let Some(name) = example {
        return match catalog.examples_of(package).iter().any(|e| e == name) {
            true => Ok((name.to_string(), i)),
            false => Err(format!("package {package} has no example {name}")),
        };
    }
    let bins = catalog
        .bins_of(package)
        .ok_or_else(|| format!("no package {package} in the workspace"))?;
    let bin = match bin {
        Some(b) if bins.iter().any(|x| x == b) => b.to_string(),
        Some(b) => return Err(format!("package {package} has no binary {b}")),
        None if bins.len() == 1 => bins[0].clone(),
        None => return Err(format!("package {package} has {} binaries", bins.len())),
    };
    Ok((bin, i))
}

/// Decides what the test does with one command.
pub fn classify(command: Command, catalog: &Catalog) -> Result<Step, String> {
    let text = rewrite_cargo_run(&command.text, catalog)?;
    let command = Command { text, ..command };
    let words: Vec<&str> = command.text.split_whitespace().collect();
    if words.first() == Some(&"cargo") {
        let mut packages = Vec::new();
        for pair in words.windows(2) {
            if pair[0] == "-p" || pair[0] == "--package" {
                packages.push(pair[1].to_string());
            }
        }
        return Ok(Step::Cargo { command, packages });
    }
    if command.text.starts_with("export PATH=") || words.first() == Some(&"cd") {
        return Ok(Step::Setup { command });
    }
    let server = words
        .iter()
        .find(|w| catalog.is_server(w) || **w == REDIS)
        .map(|w| w.to_string());
    let asks_for_help = words
        .iter()
        .any(|w| matches!(*w, "--help" | "-h" | "--version" | "-V"));
    match server {
        Some(bin) if bin == REDIS && !has_unquoted(&command.text, '|') && !asks_for_help => {
            let lesson_port = redis_port(&command.text).unwrap_or(REDIS_PORT);
            Ok(Step::Server {
                command,
                bin,
                lesson_port,
            })
        }
        Some(bin) if bin != REDIS && !has_unquoted(&command.text, '|') && !asks_for_help => {
            let lesson_port = addr_flag(&command.text)
                .and_then(|a| a.rsplit(':').next()?.parse().ok())
                .unwrap_or(DEFAULT_PORT);
            Ok(Step::Server {
                command,
                bin,
                lesson_port,
            })
        }
        _ => Ok(Step::Shell { command }),
    }
}

/// `redis-server` (lesson 10's shared state) is started like our servers: on a free port
/// instead of its `--port`, kept running for the rest of the lesson, and its lesson port is
/// mapped to the real one in later commands (`redis://127.0.0.1:6379`).
pub const REDIS: &str = "redis-server";

/// Redis's default port.
pub const REDIS_PORT: u16 = 6379;

/// The value of `--port N` in a `redis-server` line.
pub fn redis_port(text: &str) -> Option<u16> {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "--port" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// The `redis-server` line with its `--port` replaced by `port` (appended when it had none).
pub fn with_redis_port(text: &str, port: u16) -> String {
    let mut words: Vec<String> = text.split(' ').map(str::to_string).collect();
    for i in 0..words.len().saturating_sub(1) {
        if words[i] == "--port" {
            words[i + 1] = port.to_string();
            return words.join(" ");
        }
    }
    format!("{text} --port {port}")
}

/// The value of `--addr X` / `--addr=X` in a command line.
pub fn addr_flag(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "--addr" {
            return words.next();
        }
        if let Some(v) = w.strip_prefix("--addr=") {
            return Some(v);
        }
    }
    None
}

/// The command line with its `--addr` value replaced by `addr` (appended when it had none).
pub fn with_addr(text: &str, addr: &str) -> String {
    let mut words: Vec<String> = text.split(' ').map(str::to_string).collect();
    for i in 0..words.len() {
        if words[i] == "--addr" && i + 1 < words.len() {
            words[i + 1] = addr.to_string();
            return words.join(" ");
        }
        if words[i].starts_with("--addr=") {
            words[i] = format!("--addr={addr}");
            return words.join(" ");
        }
    }
    format!("{text} --addr {addr}")
}

#[cfg(test)]
mod tests {
    /// `redis-server` lines are servers on their `--port` (default 6379), moved to a free one.
    #[test]
    fn redis_server_is_a_server_on_its_port() {
        assert_eq!(
            super::redis_port("redis-server --port 7000 --save ''"),
            Some(7000)
        );
        assert_eq!(super::redis_port("redis-server"), None);
        assert_eq!(
            super::with_redis_port("redis-server --port 6379 --save ''", 41000),
            "redis-server --port 41000 --save ''"
        );
        assert_eq!(
            super::with_redis_port("redis-server", 41000),
            "redis-server --port 41000"
        );
    }

    use super::*;

    fn catalog() -> Catalog {
        Catalog::from_pairs(&[
            ("chat-blocking", &["chat-blocking"]),
            ("chat-client", &["chat"]),
            ("loadgen", &["loadgen"]),
        ])
        .with_examples(&[("chat-blocking", &["by_hand"])])
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    /// Comments, continuations, annotations and `&` are read as documented.
    #[test]
    fn parses_annotations_and_continuations() {
        let block = lines(
            "# a remark\n\
             printf '{\"a\":\"#x\"}\\n' | nc 127.0.0.1 8888  # expect: welcome; silent\n\
             chat-blocking \\\n  --idle-timeout 5 &   # fails: in use\n\
             nc 127.0.0.1 8888   # interactive\n",
        );
        let cmds = parse_block(&block, 10);
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0].line, 11);
        assert_eq!(
            cmds[0].text,
            "printf '{\"a\":\"#x\"}\\n' | nc 127.0.0.1 8888"
        );
        assert_eq!(cmds[0].expect, vec!["welcome"]);
        assert!(cmds[0].silent);
        assert_eq!(cmds[1].text, "chat-blocking --idle-timeout 5");
        assert!(cmds[1].background && cmds[1].fails);
        assert_eq!(cmds[1].expect, vec!["in use"]);
        assert!(cmds[2].interactive);
    }

    /// `cargo run` becomes the binary; servers, cargo commands and shell lines are told apart.
    #[test]
    fn classifies_commands() {
        let c = catalog();
        let step = |t: &str| {
            classify(
                Command {
                    text: t.into(),
                    ..Command::default()
                },
                &c,
            )
        };
        match step("cargo run --release -p chat-blocking -- --addr 127.0.0.1:9000").unwrap() {
            Step::Server {
                command,
                bin,
                lesson_port,
            } => {
                assert_eq!(command.text, "chat-blocking --addr 127.0.0.1:9000");
                assert_eq!(bin, "chat-blocking");
                assert_eq!(lesson_port, 9000);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            step("chat-blocking --help").unwrap(),
            Step::Shell { .. }
        ));
        match step("RUST_LOG=debug chat-blocking").unwrap() {
            Step::Server { lesson_port, .. } => assert_eq!(lesson_port, DEFAULT_PORT),
            other => panic!("{other:?}"),
        }
        match step("cargo build --release -p chat-blocking -p loadgen").unwrap() {
            Step::Cargo { packages, .. } => assert_eq!(packages, ["chat-blocking", "loadgen"]),
            other => panic!("{other:?}"),
        }
        match step("cargo run --release -p chat-blocking --example by_hand -- --fast").unwrap() {
            Step::Shell { command } => assert_eq!(command.text, "by_hand --fast"),
            other => panic!("{other:?}"),
        }
        let err = step("cargo run -p chat-blocking --example nothing").unwrap_err();
        assert!(err.contains("has no example nothing"), "{err}");
        match step("printf 'x' | cargo run -p chat-client -- --nick a").unwrap() {
            Step::Shell { command } => assert_eq!(command.text, "printf 'x' | chat --nick a"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            step("export PATH=\"$PWD/target/release:$PATH\"").unwrap(),
            Step::Setup { .. }
        ));
        assert!(step("cargo run -p nope").is_err());
        assert!(step("cargo run --frozen -p loadgen").is_err());
    }

    /// `--addr` is replaced in place, or appended.
    #[test]
    fn replaces_addr() {
        assert_eq!(
            with_addr(
                "chat-blocking --addr 127.0.0.1:8888 --backlog 1",
                "127.0.0.1:0"
            ),
            "chat-blocking --addr 127.0.0.1:0 --backlog 1"
        );
        assert_eq!(
            with_addr("chat-blocking --addr=0.0.0.0:1", "127.0.0.1:0"),
            "chat-blocking --addr=127.0.0.1:0"
        );
        assert_eq!(
            with_addr("chat-blocking", "127.0.0.1:0"),
            "chat-blocking --addr 127.0.0.1:0"
        );
    }
}
