//! Checking that every number a lesson quotes comes from a run the learner can repeat.
//!
//! Results live in blocks fenced as `measured`, whose lines include `machine: ...` (the CPU,
//! its cores, the kernel, the build), `load: ...` (how busy the machine was: see [`Load`]) and
//! `command: ...` (exactly as the lesson runs it), followed by what the command printed.
//!
//! The command must be one of the lesson's ```` ```sh ```` commands before the block (so the
//! lesson test runs it too), and the number of a throughput or latency figure in the prose
//! must appear in one of the lesson's measured blocks.

use crate::markdown::Document;
use crate::script;
use regex::Regex;
use std::path::Path;

/// Checks the measured blocks and the quoted figures of the lesson at `path`.
pub fn check_numbers(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc = Document::parse(&text);
    let name = path.display();
    let mut failures = Vec::new();
    let mut seen_commands: Vec<String> = Vec::new();
    let mut measured_text = String::new();
    for block in &doc.blocks {
        match block.lang.as_str() {
            "sh" => seen_commands.extend(
                script::parse_block(&block.lines, block.line + 1)
                    .into_iter()
                    .map(|c| normalize(&c.text)),
            ),
            "measured" => {
                measured_text.push_str(&block.lines.join("\n"));
                measured_text.push('\n');
                let field = |key: &str| {
                    block
                        .lines
                        .iter()
                        .find_map(|l| l.trim().strip_prefix(key).map(str::trim))
                };
                if field("machine:").is_none_or(str::is_empty) {
                    failures.push(format!(
                        "{name}:{}: measured block without `machine:`",
                        block.line
                    ));
                }
                if let Err(why) = Load::parse(field("load:")) {
                    failures.push(format!("{name}:{}: {why}", block.line));
                }
                match field("command:") {
                    None => failures.push(format!(
                        "{name}:{}: measured block without `command:`",
                        block.line
                    )),
                    Some(cmd) if !seen_commands.contains(&normalize(cmd)) => {
                        failures.push(format!(
                            "{name}:{}: the measured command `{cmd}` is not in a ```sh block \
                             before it (the lesson must show how to repeat it)",
                            block.line
                        ))
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    for (line, figure) in quoted_figures(&doc) {
        // The number itself must be there (tables give the unit in their header).
        let number: String = figure
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
            .collect();
        if !measured_text.contains(&number) {
            failures.push(format!(
                "{name}:{line}: `{figure}` is quoted but appears in no ```measured block"
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// How busy the machine was while a measured command ran, from the block's `load:` line.
///
/// A figure measured while other work shared the cores describes that sharing as much as the
/// server, so every block says how loaded its machine was: the 1-minute load average (`uptime`,
/// `/proc/loadavg`) as a number, optionally followed by a remark (`load: 0.3 (quiet)`,
/// `load: 6 (shared)`), or `not recorded` with the reason, for a run whose load nobody wrote
/// down (`load: not recorded (measured before load was stated)`): such a block is due to be
/// measured again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// The 1-minute load average while the command ran.
    Average(f64),
    /// Nobody wrote the load down.
    NotRecorded,
}

impl Load {
    /// Reads the value of a `load:` line (`None`: the block has none); Err says what is wrong.
    pub fn parse(value: Option<&str>) -> Result<Load, String> {
        const HOW: &str = "write the 1-minute load average from `uptime` while the command \
                           ran (`load: 0.3 (quiet)`), or `load: not recorded (why)`";
        let Some(value) = value else {
            return Err(format!("measured block without `load:` ({HOW})"));
        };
        if value.starts_with("not recorded") {
            return Ok(Load::NotRecorded);
        }
        let number: String = value
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        match number.parse::<f64>() {
            Ok(average) => Ok(Load::Average(average)),
            Err(_) => Err(format!("measured block with `load: {value}` ({HOW})")),
        }
    }
}

/// Throughput and latency figures in the prose (`1,234 msg/s`, `87 µs`, `12,000 QPS`).
///
/// The word boundaries are ASCII ones (`(?-u:\b)`): in Unicode every Chinese character is a
/// word character, so `为108 µs` would have no boundary before the `1` and its figure would
/// escape the check.
pub fn quoted_figures(doc: &Document) -> Vec<(usize, String)> {
    let re = Regex::new(r"(?-u:\b)\d[\d,.]*\s?(µs|us|msg/s|req/s|QPS|connections/s)(?-u:\b)")
        .expect("regex");
    let mut figures = Vec::new();
    for (line, text) in &doc.prose {
        for m in re.find_iter(text) {
            figures.push((*line, m.as_str().to_string()));
        }
    }
    figures
}

fn normalize(command: &str) -> String {
    command.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prose figures with a rate or latency unit are found, other numbers are not.
    #[test]
    fn finds_quoted_figures() {
        let doc =
            Document::parse("It did 12,345 msg/s at p99 87 µs on 2 cores with 100 clients.\n");
        let figures: Vec<String> = quoted_figures(&doc).into_iter().map(|f| f.1).collect();
        assert_eq!(figures, ["12,345 msg/s", "87 µs"]);
    }

    /// A load average, with or without a remark, and an honest `not recorded` are loads; a
    /// missing line, an empty one and words instead of a number are not.
    #[test]
    fn reads_the_load_line() {
        assert_eq!(Load::parse(Some("0.35 (quiet)")), Ok(Load::Average(0.35)));
        assert_eq!(Load::parse(Some("12 (shared)")), Ok(Load::Average(12.0)));
        assert_eq!(
            Load::parse(Some("not recorded (measured before load was stated)")),
            Ok(Load::NotRecorded)
        );
        for bad in [None, Some(""), Some("quiet"), Some("high")] {
            let err = Load::parse(bad).expect_err("not a load");
            assert!(err.contains("load average"), "{err}");
        }
    }

    /// A measured block without a `load:` line fails the check, naming the line to add.
    #[test]
    fn a_block_without_its_load_fails() {
        let dir = std::env::temp_dir().join(format!("measured-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let lesson = |load: &str| {
            format!(
                "```sh\nloadgen run --conns 10\n```\n\n```measured\nmachine: x\n{load}\
                 command: loadgen run --conns 10\nOK: 1000 msg/s\n```\n"
            )
        };
        let path = dir.join("lesson.md");
        std::fs::write(&path, lesson("load: 0.2 (quiet)\n")).expect("write");
        assert_eq!(check_numbers(&path), Ok(()));
        std::fs::write(&path, lesson("")).expect("write");
        let err = check_numbers(&path).expect_err("no load line");
        assert!(err.contains("measured block without `load:`"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A figure written against Chinese text, with no space around it, is found too.
    #[test]
    fn finds_figures_beside_chinese_text() {
        let doc = Document::parse("中位数为108 µs，吞吐量是12,345 msg/s的水平。\n");
        let figures: Vec<String> = quoted_figures(&doc).into_iter().map(|f| f.1).collect();
        assert_eq!(figures, ["108 µs", "12,345 msg/s"]);
    }
}
