//! The Chinese edition (`lessons/zh/`) mirrors the English one (`lessons/`), and these checks
//! keep it so:
//!
//! - **Every file has its counterpart.** Each English Markdown file has a Chinese file of the
//!   same name, and each Chinese file an English source, except the Chinese-only files in
//!   [`ZH_ONLY`] (the glossary).
//! - **The same commands.** A Chinese lesson's ```` ```sh ```` blocks are its English
//!   counterpart's, block by block and command by command, as the harness reads them: the
//!   command text and every annotation (`# expect:`, `# fails`, ...) are the same; a remark
//!   after `#` may be translated and the alignment may differ. Playing the English lesson
//!   therefore runs exactly the commands the Chinese one shows, and the Chinese lessons are not
//!   played a second time (the machine is small and the English run takes minutes).
//! - **The same numbers.** The ```` ```measured ```` blocks are copied verbatim, in the same
//!   order, and the prose quotes the same figures ([`quoted_figures`]).
//! - **Links stay in Chinese.** A Chinese file links to Chinese lessons, never to English ones
//!   ([`links_stay_in_chinese`]).
//!
//! The rules for authors are in `lessons/README.md` ("How the lessons are kept honest").

use crate::markdown::Document;
use crate::measured::quoted_figures;
use crate::script::{self, Command};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Files of the Chinese edition that have no English source.
pub const ZH_ONLY: &[&str] = &["GLOSSARY.md"];

/// English files whose Chinese edition is being written on another branch at this moment.
///
/// While a file is listed here, the mirror test does not ask for its Chinese edition, and a
/// link to it from the Chinese edition may point at a file that is not there yet. Once the file
/// exists the mirror test fails until its name is removed from this list, so the list cannot
/// hide a finished translation from the checks. The lead empties it when merging the branches.
pub const AWAITING_TRANSLATION: &[&str] = &[
    // Issue 18, deliver 5: the lessons of the new models, translated once they have settled.
    "10-beyond-one-process.md",
    "12-completion.md",
];

/// The name of `path`'s file ("" when it has none).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The Chinese edition of an English file: the same name in `lessons/zh`.
pub fn chinese_of(english: &Path) -> PathBuf {
    crate::zh_dir().join(file_name(english))
}

/// Each English Markdown file that has a Chinese edition, with that edition.
pub fn translated_pairs() -> Vec<(PathBuf, PathBuf)> {
    crate::markdown_files()
        .into_iter()
        .map(|english| {
            let chinese = chinese_of(&english);
            (english, chinese)
        })
        .filter(|(_, chinese)| chinese.exists())
        .collect()
}

/// Whether `path` is a Chinese file listed in [`AWAITING_TRANSLATION`]: a link to it from the
/// Chinese edition may dangle until the branches are merged.
pub fn is_awaiting_translation(path: &Path) -> bool {
    let in_zh = path
        .parent()
        .and_then(|dir| dir.canonicalize().ok())
        .is_some_and(|dir| Some(dir) == crate::zh_dir().canonicalize().ok());
    in_zh && AWAITING_TRANSLATION.contains(&file_name(path).as_str())
}

/// Checks that the Chinese file at `chinese` links to Chinese lessons, not to English ones: a
/// link to `../01-blocking.md` should be `01-blocking.md`. (The English course map,
/// `../README.md`, may be linked as the English edition.) Err lists the offending links.
pub fn links_stay_in_chinese(chinese: &Path) -> Result<(), String> {
    let text =
        std::fs::read_to_string(chinese).map_err(|e| format!("{}: {e}", chinese.display()))?;
    let dir = chinese.parent().unwrap_or(Path::new("."));
    let english_dir = crate::lessons_dir().canonicalize().ok();
    let problems: Vec<String> = Document::parse(&text)
        .links()
        .into_iter()
        .filter(|link| {
            let target = link.target.split('#').next().unwrap_or("");
            let file = dir.join(target);
            let name = file_name(&file);
            let in_english = file
                .parent()
                .and_then(|d| d.canonicalize().ok())
                .is_some_and(|d| Some(d) == english_dir);
            in_english && name.ends_with(".md") && name != "README.md"
        })
        .map(|link| {
            format!(
                "{}:{}: [{}]({}) links to the English lesson; link to the Chinese edition \
                 instead ({})",
                chinese.display(),
                link.line,
                link.text,
                link.target,
                link.target.trim_start_matches("../")
            )
        })
        .collect();
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("\n")),
    }
}

/// Everything wrong with the pairing of the two editions' file names (`english` and `chinese`
/// are the names of the Markdown files in `lessons/` and in `lessons/zh/`).
pub fn mirror_problems(
    english: &BTreeSet<String>,
    chinese: &BTreeSet<String>,
    awaiting: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    for name in english {
        let waits = awaiting.contains(&name.as_str());
        if !chinese.contains(name) && !waits {
            problems.push(format!(
                "lessons/zh/{name} is missing: lessons/{name} has no Chinese edition (translate \
                 it with the words of lessons/zh/GLOSSARY.md; same commands, same numbers)"
            ));
        }
        if chinese.contains(name) && waits {
            problems.push(format!(
                "lessons/zh/{name} exists now: remove \"{name}\" from \
                 lessons::editions::AWAITING_TRANSLATION so that the checks see it"
            ));
        }
    }
    for name in chinese {
        if !english.contains(name) && !ZH_ONLY.contains(&name.as_str()) {
            problems.push(format!(
                "lessons/zh/{name} has no English source lessons/{name} (rename it, or list a \
                 Chinese-only file in lessons::editions::ZH_ONLY)"
            ));
        }
    }
    for name in awaiting {
        if !english.contains(*name) {
            problems.push(format!(
                "lessons::editions::AWAITING_TRANSLATION names {name}, which is not an English \
                 lesson"
            ));
        }
    }
    problems
}

/// Checks that the Chinese lesson at `chinese` runs the commands of the English one at
/// `english`; Err lists every difference.
pub fn same_commands(english: &Path, chinese: &Path) -> Result<(), String> {
    let (en, zh) = read_pair(english, chinese)?;
    compare_commands(&en, &zh).map_err(|e| prefixed(english, chinese, &e))
}

/// Checks that the Chinese lesson at `chinese` quotes the numbers of the English one at
/// `english`; Err lists every difference.
pub fn same_numbers(english: &Path, chinese: &Path) -> Result<(), String> {
    let (en, zh) = read_pair(english, chinese)?;
    compare_numbers(&en, &zh).map_err(|e| prefixed(english, chinese, &e))
}

fn read_pair(english: &Path, chinese: &Path) -> Result<(String, String), String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    Ok((read(english)?, read(chinese)?))
}

fn prefixed(english: &Path, chinese: &Path, problems: &str) -> String {
    format!(
        "{} against {}:\n{problems}",
        chinese.display(),
        english.display()
    )
}

/// The commands of each ```` ```sh ```` block, with the line of the block's fence.
fn sh_blocks(text: &str) -> Vec<(usize, Vec<Command>)> {
    Document::parse(text)
        .blocks_of("sh")
        .map(|b| (b.line, script::parse_block(&b.lines, b.line + 1)))
        .collect()
}

/// The same command, as the harness runs it: everything but the line number.
fn same_command(a: &Command, b: &Command) -> bool {
    let at_zero = |c: &Command| Command {
        line: 0,
        ..c.clone()
    };
    at_zero(a) == at_zero(b)
}

/// A command with its annotations, as an author would write it.
fn describe(c: &Command) -> String {
    let mut notes: Vec<String> = c.expect.iter().map(|e| format!("expect: {e}")).collect();
    let flags = [
        (c.fails, "fails"),
        (c.silent, "silent"),
        (c.interactive, "interactive"),
        (c.threshold, "threshold"),
    ];
    notes.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_string()));
    let background = if c.background { " &" } else { "" };
    match notes.is_empty() {
        true => format!("`{}{background}`", c.text),
        false => format!("`{}{background}   # {}`", c.text, notes.join("; ")),
    }
}

/// Compares the ```` ```sh ```` blocks of two texts, block by block and command by command.
pub fn compare_commands(english: &str, chinese: &str) -> Result<(), String> {
    let en = sh_blocks(english);
    let zh = sh_blocks(chinese);
    let mut problems = Vec::new();
    if en.len() != zh.len() {
        problems.push(format!(
            "{} ```sh blocks in English, {} in Chinese",
            en.len(),
            zh.len()
        ));
    }
    for (i, ((en_line, en_cmds), (zh_line, zh_cmds))) in en.iter().zip(&zh).enumerate() {
        let block = format!(
            "```sh block {} (English line {en_line}, Chinese line {zh_line})",
            i + 1
        );
        if en_cmds.len() != zh_cmds.len() {
            problems.push(format!(
                "{block}: {} commands in English, {} in Chinese",
                en_cmds.len(),
                zh_cmds.len()
            ));
        }
        for (a, b) in en_cmds.iter().zip(zh_cmds) {
            if !same_command(a, b) {
                problems.push(format!(
                    "{block}: English line {} runs {}, Chinese line {} runs {}",
                    a.line,
                    describe(a),
                    b.line,
                    describe(b)
                ));
            }
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("\n")),
    }
}

/// Compares the ```` ```measured ```` blocks (verbatim) and the prose figures (as a set) of two
/// texts.
pub fn compare_numbers(english: &str, chinese: &str) -> Result<(), String> {
    let (en, zh) = (Document::parse(english), Document::parse(chinese));
    let mut problems = Vec::new();
    let en_measured: Vec<_> = en.blocks_of("measured").collect();
    let zh_measured: Vec<_> = zh.blocks_of("measured").collect();
    if en_measured.len() != zh_measured.len() {
        problems.push(format!(
            "{} ```measured blocks in English, {} in Chinese",
            en_measured.len(),
            zh_measured.len()
        ));
    }
    for (a, b) in en_measured.iter().zip(&zh_measured) {
        let first_difference = (0..a.lines.len().max(b.lines.len())).find(|&i| {
            a.lines.get(i).map(|l| l.trim_end()) != b.lines.get(i).map(|l| l.trim_end())
        });
        if let Some(i) = first_difference {
            problems.push(format!(
                "```measured block at English line {} differs from the one at Chinese line {} \
                 (copy it verbatim): English {:?}, Chinese {:?}",
                a.line,
                b.line,
                a.lines.get(i).map_or("", String::as_str),
                b.lines.get(i).map_or("", String::as_str)
            ));
        }
    }
    let figures = |doc: &Document| -> BTreeSet<String> {
        quoted_figures(doc)
            .into_iter()
            .map(|(_, f)| f.split_whitespace().collect())
            .collect()
    };
    let (en_figures, zh_figures) = (figures(&en), figures(&zh));
    let only_en: Vec<&String> = en_figures.difference(&zh_figures).collect();
    let only_zh: Vec<&String> = zh_figures.difference(&en_figures).collect();
    if !only_en.is_empty() {
        problems.push(format!(
            "figures the English prose quotes and the Chinese does not: {only_en:?}"
        ));
    }
    if !only_zh.is_empty() {
        problems.push(format!(
            "figures the Chinese prose quotes and the English does not: {only_zh:?}"
        ));
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// A missing translation, an orphan, a finished translation still listed as awaited and a
    /// stale awaited name are each reported; the glossary and awaited files are not.
    #[test]
    fn mirror_names_every_gap() {
        let english = names(&[
            "README.md",
            "01-blocking.md",
            "02-threads.md",
            "05-epoll.md",
        ]);
        let chinese = names(&["README.md", "GLOSSARY.md", "02-threads.md", "03-old.md"]);
        let problems = mirror_problems(&english, &chinese, &["05-epoll.md", "02-threads.md"]);
        let all = problems.join("\n");
        assert!(
            all.contains("lessons/zh/01-blocking.md is missing"),
            "{all}"
        );
        assert!(
            all.contains("lessons/zh/03-old.md has no English source"),
            "{all}"
        );
        assert!(all.contains("remove \"02-threads.md\""), "{all}");
        assert!(!all.contains("05-epoll.md"), "{all}");
        assert!(!all.contains("GLOSSARY.md has no English source"), "{all}");
        assert_eq!(problems.len(), 3, "{all}");
        let stale = mirror_problems(&english, &english, &["06-reactor.md"]);
        assert!(stale[0].contains("names 06-reactor.md"), "{stale:?}");
        assert!(mirror_problems(&english, &english, &[]).is_empty());
    }

    const ENGLISH: &str =
        "Run it:\n\n```sh\nchat-blocking --idle-timeout 10   # expect: listening on\n\
        nc 127.0.0.1 8888   # interactive\nls   # a remark\n```\n";

    /// Translated prose and remarks, and other alignment, are the same commands.
    #[test]
    fn translated_remarks_are_the_same_commands() {
        let chinese = "运行它：\n\n```sh\nchat-blocking --idle-timeout 10 # expect: listening on\n\
            nc 127.0.0.1 8888          # interactive\nls   # 一句说明\n```\n";
        assert_eq!(compare_commands(ENGLISH, chinese), Ok(()));
    }

    /// A changed flag, a changed or translated annotation, a missing command and a missing
    /// block each fail.
    #[test]
    fn a_different_command_fails() {
        let flag = ENGLISH.replace("--idle-timeout 10", "--idle-timeout 5");
        let err = compare_commands(ENGLISH, &flag).expect_err("changed flag");
        assert!(err.contains("--idle-timeout 5"), "{err}");
        let expect = ENGLISH.replace("expect: listening on", "expect: 正在监听");
        assert!(compare_commands(ENGLISH, &expect).is_err());
        let annotation = ENGLISH.replace("# interactive", "# 交互");
        let err = compare_commands(ENGLISH, &annotation).expect_err("translated annotation");
        assert!(err.contains("# interactive"), "{err}");
        let fewer = ENGLISH.replace("ls   # a remark\n", "");
        let err = compare_commands(ENGLISH, &fewer).expect_err("missing command");
        assert!(err.contains("3 commands in English, 2 in Chinese"), "{err}");
        let err = compare_commands(ENGLISH, "没有命令。\n").expect_err("missing block");
        assert!(
            err.contains("1 ```sh blocks in English, 0 in Chinese"),
            "{err}"
        );
    }

    const MEASURED: &str = "```sh\nloadgen run --conns 10\n```\n\n```measured\nmachine: x\n\
        command: loadgen run --conns 10\nOK: 1000 msg/s acknowledged, round trip p99 1825 µs\n```\n";

    /// Verbatim measured blocks and the same prose figures pass, next to Chinese characters
    /// too (no space between the figure and the text around it).
    #[test]
    fn the_same_numbers_pass() {
        let english = format!("{MEASURED}\nThe p99 was 1825 µs, at 1000 msg/s.\n");
        let chinese = format!("{MEASURED}\np99 为1825 µs，负载是 1000 msg/s。\n");
        assert_eq!(compare_numbers(&english, &chinese), Ok(()));
    }

    /// A changed measured line, a measured block left out and a prose figure that differs each
    /// fail.
    #[test]
    fn different_numbers_fail() {
        let english = format!("{MEASURED}\nThe p99 was 1825 µs.\n");
        let edited = english.replace("p99 1825", "p99 1826");
        let err = compare_numbers(&english, &edited).expect_err("edited measured block");
        assert!(err.contains("copy it verbatim"), "{err}");
        let chinese = format!("{MEASURED}\np99 为1852 µs。\n");
        let err = compare_numbers(&english, &chinese).expect_err("different figure");
        assert!(err.contains("\"1825µs\""), "{err}");
        assert!(err.contains("\"1852µs\""), "{err}");
        let in_words = format!("{MEASURED}\np99 为 1825 微秒。\n");
        assert!(compare_numbers(&english, &in_words).is_err());
        let err = compare_numbers(&english, "p99 为 1825 µs。\n").expect_err("no block");
        assert!(
            err.contains("1 ```measured blocks in English, 0 in Chinese"),
            "{err}"
        );
    }
}
