//! # lessons: the course, and the tests that keep it honest
//!
//! The lessons are the Markdown files beside this crate (`lessons/*.md`), and their Chinese
//! edition (`lessons/zh/*.md`). This library reads them the way the tests in `lessons/tests/`
//! need:
//!
//! | module | what it does |
//! |---|---|
//! | [`markdown`] | finds the fenced code blocks and the links of a lesson |
//! | [`script`] | reads a ```` ```sh ```` block as commands with their annotations |
//! | [`catalog`] | the workspace's packages and binaries; builds the ones a lesson runs |
//! | [`rewrite`] | writes out default addresses, shortens load runs |
//! | [`proc`] | runs one command in its own process group and always stops it |
//! | [`session`] | plays a whole lesson against the real binaries, as a test or to measure it again |
//! | [`refs`] | checks links and code references |
//! | [`measured`] | checks that quoted numbers come from a repeatable run; rewrites measured blocks (`remeasure`) |
//! | [`editions`] | checks that the Chinese edition mirrors the English one |
//! | [`exercises`] | the exercises' checks, proven on a reference solution and a starting point |
//!
//! The conventions a lesson author follows are in `lessons/README.md`.

pub mod catalog;
pub mod editions;
pub mod exercises;
pub mod markdown;
pub mod measured;
pub mod proc;
pub mod refs;
pub mod rewrite;
pub mod script;
pub mod session;

use std::path::{Path, PathBuf};

/// The folder of the lessons (this crate's folder): the English edition.
pub fn lessons_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folder of the Chinese edition (`lessons/zh`).
pub fn zh_dir() -> PathBuf {
    lessons_dir().join("zh")
}

/// Every Markdown file of the English edition, sorted (lessons, README, INSTRUCTORS).
pub fn markdown_files() -> Vec<PathBuf> {
    markdown_files_in(&lessons_dir())
}

/// Every Markdown file of the Chinese edition, sorted (lessons, README, INSTRUCTORS, GLOSSARY).
pub fn zh_markdown_files() -> Vec<PathBuf> {
    markdown_files_in(&zh_dir())
}

/// Every Markdown file of both editions: what the link and number checks read.
pub fn all_markdown_files() -> Vec<PathBuf> {
    let mut files = markdown_files();
    files.extend(zh_markdown_files());
    files
}

/// What `check` finds wrong with each of `items`, in their order: a test asserts that the list
/// is empty and prints all of it, so that one run names every broken lesson, not the first.
pub fn failures<T>(items: &[T], check: impl Fn(&T) -> Result<(), String>) -> Vec<String> {
    items.iter().filter_map(|item| check(item).err()).collect()
}

/// The Markdown files directly in `dir`, sorted (none if the folder does not exist).
pub fn markdown_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    files
}
