//! # lessons: the course, and the tests that keep it honest
//!
//! The lessons are the Markdown files beside this crate (`lessons/*.md`). This library reads
//! them the way the tests in `lessons/tests/` need:
//!
//! | module | what it does |
//! |---|---|
//! | [`markdown`] | finds the fenced code blocks and the links of a lesson |
//! | [`script`] | reads a ```` ```sh ```` block as commands with their annotations |
//! | [`catalog`] | the workspace's packages and binaries; builds the ones a lesson runs |
//! | [`rewrite`] | writes out default addresses, shortens load runs |
//! | [`proc`] | runs one command in its own process group and always stops it |
//! | [`session`] | plays a whole lesson against the real binaries |
//! | [`refs`] | checks links and code references |
//! | [`measured`] | checks that quoted numbers come from a repeatable run |
//!
//! The conventions a lesson author follows are in `lessons/README.md`.

pub mod catalog;
pub mod markdown;
pub mod measured;
pub mod proc;
pub mod refs;
pub mod rewrite;
pub mod script;
pub mod session;

use std::path::PathBuf;

/// The folder of the lessons (this crate's folder).
pub fn lessons_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every Markdown file of the course, sorted (lessons, README, INSTRUCTORS).
pub fn markdown_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(lessons_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    files
}
