//! Measures a lesson again: plays it as a learner would (release binaries, every load run at
//! its full length), and replaces its ```` ```measured ```` blocks with what the commands print
//! now, in the English lesson and, verbatim, in its Chinese edition. Then it lists the figures
//! the prose quotes that no measured block holds any more: those sentences are the author's to
//! rewrite, in both editions.
//!
//! ```sh
//! cargo run -p lessons --bin remeasure -- 02-threads.md 05-epoll.md
//! cargo run -p lessons --bin remeasure -- --only ' --rate ' 08-measuring.md
//! ```
//!
//! A block keeps the kinds of line it held (`lessons::measured::keep_kinds`): one cut down to
//! the verdict, the latency rows and the `cpu` line gets those lines of the new run, and the
//! kinds it leaves out are listed.
//!
//! `--only TEXT` replaces only the blocks whose command contains TEXT (the others keep their
//! earlier run, and their own `machine:` and `load:` lines say when that was). `--remark TEXT`
//! is what follows the load average (default: the quiet machine's remark; measure on a quiet
//! machine, nothing else running). Before each lesson it waits up to two minutes for the load
//! average to fall below 1 (a build's or the last lesson's load fades slowly). Nothing is
//! written for a lesson whose commands fail.

use lessons::catalog::{Catalog, Profile};
use lessons::editions::{chinese_of, same_numbers};
use lessons::measured::{carry_over, check_numbers, load_average, rewrite, this_machine};
use lessons::session::measure_lesson;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Below this 1-minute load average the machine counts as quiet (on any number of cores: what
/// a lesson runs is one or two busy processes).
const QUIET_LOAD: f64 = 1.0;
/// How long to wait for the load of a build or an earlier lesson to fade.
const SETTLE: Duration = Duration::from_secs(120);

/// Waits until the load average falls below [`QUIET_LOAD`], at most [`SETTLE`]; returns it.
fn settle() -> f64 {
    let start = Instant::now();
    loop {
        let load = load_average();
        if load < QUIET_LOAD || start.elapsed() >= SETTLE {
            return load;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

const QUIET: &str =
    "quiet: only this lesson's commands; the 1-minute average at the end of the command";

fn main() -> ExitCode {
    let mut only = String::new();
    let mut remark = QUIET.to_string();
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--only" | "--remark" => {
                let Some(value) = args.next() else {
                    eprintln!("{arg} needs a value");
                    return ExitCode::from(2);
                };
                if arg == "--only" {
                    only = value;
                } else {
                    remark = value;
                }
            }
            "-h" | "--help" => {
                println!("remeasure [--only TEXT] [--remark TEXT] LESSON.md...");
                return ExitCode::SUCCESS;
            }
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        eprintln!("name the lessons to measure again (02-threads.md ...)");
        return ExitCode::from(2);
    }
    let machine = this_machine();
    // Build first: a lesson measured while the compiler still weighs on the load average
    // measures the compiler too.
    if let Err(e) = Catalog::workspace().and_then(|c| c.build_all_as(Profile::Release)) {
        eprintln!("cannot build the binaries: {e}");
        return ExitCode::FAILURE;
    }
    let mut ok = true;
    for file in files {
        let mut path = PathBuf::from(&file);
        if !path.exists() {
            path = lessons::lessons_dir().join(&file);
        }
        ok &= remeasure(&path, &only, &machine, &remark);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Measures one lesson again; false when something is left to do by hand.
fn remeasure(path: &std::path::Path, only: &str, machine: &str, remark: &str) -> bool {
    let name = path.display();
    let load = settle();
    if load > QUIET_LOAD {
        eprintln!(
            "{name}: the load average is still {load:.2} after {SETTLE:?}: is something else \
             running?"
        );
    }
    let captures = match measure_lesson(path) {
        Ok(captures) => captures,
        Err(failures) => {
            eprintln!("{name}: not measured, its commands failed:\n\n{failures}");
            return false;
        }
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("{name}: cannot read it");
        return false;
    };
    let new = rewrite(&text, &captures, only, machine, remark);
    let mut ok = new.missing.is_empty();
    for why in &new.missing {
        eprintln!("{name}: kept a block: {why}");
    }
    if let Err(e) = std::fs::write(path, &new.text) {
        eprintln!("{name}: cannot write it: {e}");
        return false;
    }
    println!("{name}: {} measured blocks replaced", new.replaced.len());
    for trimmed in &new.trimmed {
        println!("{name}: {trimmed}");
    }
    let chinese = chinese_of(path);
    if let Ok(text) = std::fs::read_to_string(&chinese) {
        match carry_over(&text, &new.replaced) {
            Ok(text) => {
                if let Err(e) = std::fs::write(&chinese, text) {
                    eprintln!("{}: cannot write it: {e}", chinese.display());
                    ok = false;
                }
            }
            Err(why) => {
                eprintln!("{}: not changed: {why}", chinese.display());
                ok = false;
            }
        }
    }
    // What the prose quotes and no block holds any more: sentences to rewrite.
    let mut checks = vec![check_numbers(path)];
    if chinese.exists() {
        checks.push(check_numbers(&chinese));
        checks.push(same_numbers(path, &chinese));
    }
    for failure in checks.into_iter().filter_map(Result::err) {
        eprintln!("{failure}");
        ok = false;
    }
    ok
}
