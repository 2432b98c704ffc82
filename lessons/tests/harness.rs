//! The lesson harness itself can fail: a renamed flag, a wrong expectation, a command that
//! should fail but does not, and a broken code reference are each caught. (Without these tests
//! a harness that passes everything would look exactly like a course that works.)

use lessons::editions::links_stay_in_chinese;
use lessons::refs::check_links;
use lessons::session::run_lesson;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Writes `text` as a lesson file in a fresh temporary folder inside `lessons/` (so relative
/// links resolve like a real lesson's) and returns its path; the folder is removed on drop.
struct TempLesson {
    dir: PathBuf,
    file: PathBuf,
}

impl TempLesson {
    fn new(text: &str) -> TempLesson {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("lessons-harness-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("lesson.md");
        std::fs::write(&file, text).expect("write lesson");
        TempLesson { dir, file }
    }
}

impl Drop for TempLesson {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Plays the lesson `text`, which must fail, and returns what the harness says about it.
fn failure_of(text: &str) -> String {
    let lesson = TempLesson::new(text);
    run_lesson(&lesson.file)
        .err()
        .unwrap_or_else(|| panic!("this lesson must fail, and it passed:\n{text}"))
}

/// A lesson whose commands do what it says passes.
#[test]
fn a_correct_lesson_passes() {
    let lesson = TempLesson::new(
        "```sh\nchat-blocking --idle-timeout 5   # expect: listening on 127.0.0.1:8888\n\
         printf '{\"type\":\"ping\",\"id\":7}\\n{\"type\":\"quit\"}\\n' | nc 127.0.0.1 8888   # expect: {\"type\":\"pong\",\"id\":7}\n\
         chat-blocking --addr 127.0.0.1:8888 --reuse-addr false   # fails: in use\n```\n",
    );
    if let Err(e) = run_lesson(&lesson.file) {
        panic!("{e}");
    }
}

/// A flag the server does not have (a renamed one) fails the lesson.
#[test]
fn a_renamed_flag_fails() {
    let err = failure_of("```sh\nchat-blocking --idle-timout 5\n```\n");
    assert!(err.contains("server did not start"), "{err}");
    assert!(err.contains("--idle-timout"), "{err}");
}

/// Output that lacks the `# expect:` text fails; so does output under `# silent`.
#[test]
fn a_wrong_expectation_fails() {
    let err = failure_of(
        "```sh\nchat-blocking\n\
         printf '{\"type\":\"ping\"}\\n{\"type\":\"quit\"}\\n' | nc 127.0.0.1 8888   # expect: \"type\":\"welcome\"\n\
         echo hello   # silent\n```\n",
    );
    assert!(err.contains("output lacks"), "{err}");
    assert!(err.contains("should print nothing"), "{err}");
}

/// `# fails` on a command that succeeds fails, and a failing command without it fails.
#[test]
fn exit_status_is_checked() {
    let err = failure_of("```sh\ntrue   # fails\nfalse\n```\n");
    assert!(err.contains("should fail but exited 0"), "{err}");
    assert!(err.contains("`false`: exited with"), "{err}");
}

/// An unknown package in `cargo run -p` or `cargo build -p` fails.
#[test]
fn an_unknown_package_fails() {
    let err = failure_of("```sh\ncargo build -p chat-nothing\ncargo run -p nope\n```\n");
    assert!(err.contains("no package chat-nothing"), "{err}");
    assert!(err.contains("no package nope"), "{err}");
}

/// `cargo run --example` with an example the package does not have fails, naming it.
#[test]
fn an_unknown_example_fails() {
    let err = failure_of("```sh\ncargo run -p chat-async --example nothing\n```\n");
    assert!(
        err.contains("package chat-async has no example nothing"),
        "{err}"
    );
}

/// A code reference to a function the file does not define fails, and one that exists passes.
#[test]
fn a_missing_function_fails() {
    let servers = lessons::lessons_dir().join("../servers/blocking/src/main.rs");
    let target = servers.canonicalize().expect("chat-blocking source");
    let lesson = TempLesson::new(&format!(
        "[`serve`]({t}) and [`handle_connection`]({t}) but not [`on_peer_ready_recv`]({t}).\n",
        t = target.display()
    ));
    let err = check_links(&lesson.file).expect_err("missing function must fail");
    assert!(err.contains("defines no `on_peer_ready_recv`"), "{err}");
    assert!(!err.contains("`serve`"), "{err}");
}

/// A Chinese lesson that links to an English lesson fails; links to the English course map
/// and to sources pass.
#[test]
fn a_chinese_link_to_an_english_lesson_fails() {
    let english = lessons::lessons_dir()
        .canonicalize()
        .expect("lessons folder");
    let lesson = TempLesson::new(&format!(
        "见[第 01 课]({e}/01-blocking.md)、[English edition]({e}/README.md) 和 \
         [`serve`]({e}/../servers/blocking/src/main.rs)。\n",
        e = english.display()
    ));
    let err = links_stay_in_chinese(&lesson.file).expect_err("English lesson link must fail");
    assert!(
        err.contains("01-blocking.md) links to the English lesson"),
        "{err}"
    );
    assert!(!err.contains("README"), "{err}");
    assert!(!err.contains("serve"), "{err}");
}
