//! The Chinese edition (`lessons/zh/`) mirrors the English one file for file. The rules are
//! in `lessons/README.md` and in the module docs of `lessons::editions`.

use lessons::editions::{mirror_problems, AWAITING_TRANSLATION};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn names(files: Vec<PathBuf>) -> BTreeSet<String> {
    files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// Every English lesson (and README, INSTRUCTORS) has a Chinese edition of the same name in
/// `lessons/zh/`, and every Chinese file an English source (the glossary excepted). A new
/// lesson without its translation fails here, naming the file to write.
#[test]
fn every_lesson_has_a_chinese_edition() {
    let english = names(lessons::markdown_files());
    let chinese = names(lessons::zh_markdown_files());
    assert!(
        english.contains("00-start-here.md"),
        "no English lessons found in {}",
        lessons::lessons_dir().display()
    );
    let problems = mirror_problems(&english, &chinese, AWAITING_TRANSLATION);
    assert!(
        problems.is_empty(),
        "the Chinese edition does not mirror the English one:\n{}",
        problems.join("\n")
    );
}
