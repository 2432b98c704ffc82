//! The browser client in a real browser: headless Chromium through WebDriver, on a cluster of
//! two nodes over a real Redis, with the terminal client (`chat`, over TCP) in the same room.

mod support;

use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};
use support::browser::{chat_binary, Browser, Chromedriver};
use support::{unique_prefix, Node, Redis};

/// How long a browser may take to show something.
const SHOW: Duration = Duration::from_secs(10);

/// The terminal client, killed on drop; its output lines arrive on `lines`.
struct Terminal {
    child: Child,
    /// What it sends: one line, one message (or a `/command`).
    stdin: ChildStdin,
    /// Its stdout, line by line, from a reader thread.
    lines: Receiver<String>,
    /// The lines read so far.
    seen: Vec<String>,
}

impl Terminal {
    fn start(addr: std::net::SocketAddr, nick: &str, room: &str) -> Terminal {
        let mut child = Command::new(chat_binary())
            .args(["--addr", &addr.to_string(), "--nick", nick, "--room", room])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chat starts");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Terminal {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    fn say(&mut self, text: &str) {
        writeln!(self.stdin, "{text}").expect("write to chat");
    }

    /// Waits for a line containing `text`.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + SHOW;
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "the terminal client never showed {text:?}: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// The chat lines (`<from> text`), in order, without their time stamps.
    fn messages(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|l| {
                l.split_once("] <")
                    .map(|(_, rest)| rest.replacen("> ", ": ", 1))
            })
            .collect()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Joins through the login form, as a person does.
async fn join(browser: &Browser, nickname: &str, room: &str) {
    browser.type_into("nickname", nickname).await;
    browser.type_into("room", room).await;
    browser.click("#join").await;
}

async fn wait_online(browser: &Browser) {
    browser
        .wait_until(
            "online",
            "return !document.getElementById('chat').hidden && \
             document.getElementById('status').textContent === 'online'",
            SHOW,
        )
        .await;
}

/// Waits until the browser shows `count` chat messages.
async fn wait_messages(browser: &Browser, count: usize) {
    let script = format!("return document.querySelectorAll('#log li.msg').length >= {count}");
    browser
        .wait_until(&format!("{count} messages"), &script, SHOW)
        .await;
}

/// Two browsers on two different nodes and a terminal client share a room and see each other's
/// messages in one order (Chinese, emoji, a long message, a private one); a taken nickname is
/// said in words; the phone-sized page never scrolls sideways; a reload comes back to the same
/// nickname and room. Saves screenshots (desktop and phone) for the README, in
/// `target/tmp/browser-client*.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_and_a_terminal_share_a_room() {
    let Some(redis) = Redis::start() else { return };
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    let prefix = unique_prefix("browser");
    let one = Node::start(&redis, &prefix, &["--node-id", "one"]);
    let two = Node::start(&redis, &prefix, &["--node-id", "two"]);

    let desk = driver.browser("desk", 1000, 860, false).await;
    let phone = driver.browser("phone", 390, 760, true).await;
    desk.open(&format!("http://{}/", one.http)).await;
    phone.open(&format!("http://{}/", two.http)).await;

    join(&desk, "ada", "den").await;
    wait_online(&desk).await;
    // A taken nickname (ignoring case) is refused in words a person understands.
    join(&phone, "ADA", "den").await;
    phone
        .wait_until(
            "the refusal",
            "return document.getElementById('login-error').textContent === \
             'that nickname is taken'",
            SHOW,
        )
        .await;
    join(&phone, "李雷", "den").await;
    wait_online(&phone).await;
    let mut terminal = Terminal::start(two.addr, "term", "den");
    terminal.wait_for("welcome term");
    desk.wait_until(
        "three members",
        "return document.querySelectorAll('#members li').length === 3",
        SHOW,
    )
    .await;

    // One message from each, in turn, each seen by the next speaker before it speaks.
    let long = format!(
        "A long message wraps inside its bubble instead of widening the page, even a link \
         with no space to break at: https://example.com/{} and then {}",
        "a1b2c3d4e5".repeat(12),
        "more words, ".repeat(12).trim_end()
    );
    desk.type_into("text", "hello from ada\u{e007}").await; // typed, then Enter
    wait_messages(&phone, 1).await;
    phone.say("你好，我是李雷 🎉").await;
    terminal.wait_for("<李雷> 你好，我是李雷 🎉");
    terminal.say("hi from the terminal 👋");
    wait_messages(&desk, 3).await;
    desk.say(&long).await;
    wait_messages(&phone, 4).await;
    wait_messages(&desk, 4).await;
    terminal.wait_for("A long message");

    let expected = vec![
        "ada: hello from ada".to_string(),
        "李雷: 你好，我是李雷 🎉".to_string(),
        "term: hi from the terminal 👋".to_string(),
        format!("ada: {long}"),
    ];
    assert_eq!(desk.messages().await, expected, "desk");
    assert_eq!(phone.messages().await, expected, "phone");
    assert_eq!(terminal.messages(), expected, "terminal");

    // A private message, across nodes, shown apart.
    phone.say("/msg ada just between us 🤫").await;
    desk.wait_until(
        "the private message",
        "return [...document.querySelectorAll('#log li.msg.private .text')]\
         .some((t) => t.textContent === 'just between us 🤫')",
        SHOW,
    )
    .await;

    // On the phone, the members are behind ☰: tapping one writes to them privately.
    phone.click("#toggle-side").await;
    phone
        .wait_until(
            "the side panel",
            "return document.getElementById('side').getBoundingClientRect().left >= 0",
            SHOW,
        )
        .await;
    phone.click("#members li[tabindex]").await; // the first member that is not oneself
    phone
        .wait_until(
            "the private chip",
            "return document.getElementById('private-to').textContent === 'to ada ✕'",
            SHOW,
        )
        .await;
    phone.say("tapped 👆").await;
    desk.wait_until(
        "the tapped private message",
        "return [...document.querySelectorAll('#log li.msg.private .text')]\
         .some((t) => t.textContent === 'tapped 👆')",
        SHOW,
    )
    .await;
    phone.click("#private-to").await; // back to the room

    // The phone-sized page: nothing wider than the screen, long message included.
    let fits = phone
        .eval(
            "return document.documentElement.scrollWidth <= window.innerWidth && \
             [...document.querySelectorAll('#log li')].every(\
               (li) => li.getBoundingClientRect().right <= window.innerWidth)",
            vec![],
        )
        .await;
    assert_eq!(fits, json!(true), "the phone-sized page scrolls sideways");

    // The pictures for the README: the conversation, on a desktop and on a phone.
    desk.wait_until(
        "the room list counts three",
        "return document.querySelector('#rooms li.current .count')?.textContent === '3'",
        SHOW,
    )
    .await;
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    desk.screenshot(&shots.join("browser-client.png")).await;
    phone
        .screenshot(&shots.join("browser-client-phone.png"))
        .await;
    eprintln!("screenshots: {}/browser-client*.png", shots.display());

    // A reload comes back as 李雷 in den, and speaks again.
    phone.client.refresh().await.expect("reload");
    wait_online(&phone).await;
    let restored = phone
        .eval(
            "return [document.getElementById('room-name').textContent, \
                     document.getElementById('me').textContent]",
            vec![],
        )
        .await;
    assert_eq!(restored, json!(["den", "as 李雷"]));
    phone.say("back after a reload").await;
    desk.wait_until(
        "the message after the reload",
        "return [...document.querySelectorAll('#log li.msg .text')]\
         .some((t) => t.textContent === 'back after a reload')",
        SHOW,
    )
    .await;
    terminal.wait_for("<李雷> back after a reload");

    for browser in [desk, phone] {
        let _ = browser.client.close().await;
    }
}
