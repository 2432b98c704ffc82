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
use std::collections::BTreeSet;
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

/// What one command of a lesson printed when the lesson was played to be measured
/// ([`crate::session::measure_lesson`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    /// The command as the lesson writes it.
    pub command: String,
    /// What it printed (stdout and stderr, as a terminal shows them), the lesson's ports in it.
    pub output: String,
    /// The 1-minute load average when it ended.
    pub load: f64,
}

/// The 1-minute load average now (`/proc/loadavg`); 0 where it cannot be read.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// This machine as a `machine:` line names it: `AMD EPYC (family 25), 2 cores (KVM), Linux
/// 6.18, release build` (the model and family from `lscpu`, the cores the process may use,
/// the hypervisor where there is one, the kernel's version).
pub fn this_machine() -> String {
    let lscpu = std::process::Command::new("lscpu")
        .env("LC_ALL", "C")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let field = |key: &str| {
        lscpu.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let mut cpu = field("Model name").unwrap_or_else(|| "unknown CPU".into());
    if let Some(family) = field("CPU family") {
        cpu = format!("{cpu} (family {family})");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hypervisor = field("Hypervisor vendor").map_or(String::new(), |h| format!(" ({h})"));
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let kernel: Vec<&str> = release.trim().split(['.', '-']).take(2).collect();
    format!(
        "{cpu}, {cores} cores{hypervisor}, Linux {}, release build",
        kernel.join(".")
    )
}

/// A lesson with some of its measured blocks measured again.
#[derive(Debug, Default)]
pub struct Rewritten {
    /// The lesson's new text.
    pub text: String,
    /// Each block replaced: its old lines and its new ones (between the fences).
    pub replaced: Vec<(Vec<String>, Vec<String>)>,
    /// The blocks that were to be replaced but whose command never ran (or ran fewer times
    /// than the lesson quotes it), by line.
    pub missing: Vec<String>,
    /// For each replaced block that left lines of the new output out (see [`keep_kinds`]), by
    /// line: the kinds it left out.
    pub trimmed: Vec<String>,
}

/// Replaces each measured block of `text` whose command contains `only` (every block when
/// `only` is empty) with what that command printed in `captures`: the n-th block quoting a
/// command gets its n-th run, in the order the commands ended. Its `machine:` line becomes
/// `machine`, its `load:` line the load when the command ended followed by `remark`; the
/// `command:` line stays. Of the output, the block keeps the kinds of line it held before
/// ([`keep_kinds`]): a block cut down to the lines its lesson discusses stays cut down.
pub fn rewrite(
    text: &str,
    captures: &[Capture],
    only: &str,
    machine: &str,
    remark: &str,
) -> Rewritten {
    let doc = Document::parse(text);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut out = Rewritten::default();
    let mut runs_used: Vec<String> = Vec::new();
    let mut edits: Vec<(usize, usize, Vec<String>)> = Vec::new(); // (first line, count, new)
    for block in doc.blocks.iter().filter(|b| b.lang == "measured") {
        let Some(command) = block
            .lines
            .iter()
            .find_map(|l| l.trim().strip_prefix("command:").map(str::trim))
        else {
            continue;
        };
        let key = normalize(command);
        let nth = runs_used.iter().filter(|k| **k == key).count();
        runs_used.push(key.clone());
        if !command.contains(only) {
            continue;
        }
        let Some(run) = captures
            .iter()
            .filter(|c| normalize(&c.command) == key)
            .nth(nth)
        else {
            out.missing.push(format!(
                "line {}: `{command}` ran fewer than {} times",
                block.line,
                nth + 1
            ));
            continue;
        };
        let mut new = vec![
            format!("machine: {machine}"),
            format!("load: {:.2} ({remark})", run.load),
            format!("command: {command}"),
        ];
        let (kept, left_out) = keep_kinds(&block.lines, run.output.trim_end());
        new.extend(kept);
        if !left_out.is_empty() {
            out.trimmed.push(format!(
                "line {}: left out, as before: {}",
                block.line,
                left_out.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        // `block.line` is the opening fence's (1-based): the block's lines follow it.
        edits.push((block.line, block.lines.len(), new.clone()));
        out.replaced.push((block.lines.clone(), new));
    }
    for (first, count, new) in edits.into_iter().rev() {
        lines.splice(first..first + count, new);
    }
    out.text = lines.join("\n");
    if text.ends_with('\n') {
        out.text.push('\n');
    }
    out
}

/// What kind of output line `line` is, for [`keep_kinds`]: its text up to its first digit or
/// its first gap of two spaces (`round trip (corrected)`, `cpu`, `| chat-epoll (edge) |`), and
/// one kind for every verdict line (`OK:`, `WARNING:`, `FAILED:`), so a run that now fails
/// still says so.
fn line_kind(line: &str) -> String {
    let line = line.trim();
    if ["OK:", "WARNING:", "FAILED:"]
        .iter()
        .any(|verdict| line.starts_with(verdict))
    {
        return "the verdict".to_string();
    }
    if line.is_empty() {
        return "blank lines".to_string();
    }
    let end = line
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(line.len());
    let end = line[..end].find("  ").unwrap_or(end);
    line[..end].trim().to_string()
}

/// The lines of `output` of the kinds ([`line_kind`]) that `block` (a measured block's old
/// lines) held below its `machine:`, `load:` and `command:` lines, and the kinds left out. All
/// of `output` when none of its lines is of a kind the block held: the report changed shape,
/// or the block held something else, and the author must look.
pub fn keep_kinds(block: &[String], output: &str) -> (Vec<String>, BTreeSet<String>) {
    let held: BTreeSet<String> = block
        .iter()
        .filter(|l| {
            !["machine:", "load:", "command:"]
                .iter()
                .any(|k| l.trim().starts_with(k))
        })
        .map(|l| line_kind(l))
        .collect();
    let lines: Vec<(&str, String)> = output.lines().map(|l| (l, line_kind(l))).collect();
    let keep_all = !lines.iter().any(|(_, kind)| held.contains(kind));
    let mut kept = Vec::new();
    let mut left_out = BTreeSet::new();
    for (line, kind) in lines {
        if keep_all || held.contains(&kind) {
            kept.push(line.to_string());
        } else {
            left_out.insert(kind);
        }
    }
    (kept, left_out)
}

/// `text` (a translation) with each `(old, new)` measured block of `replaced` replaced, where
/// it holds the old one verbatim; Err names the blocks it does not hold.
pub fn carry_over(text: &str, replaced: &[(Vec<String>, Vec<String>)]) -> Result<String, String> {
    let fenced = |lines: &[String]| format!("```measured\n{}\n```", lines.join("\n"));
    let mut text = text.to_string();
    let mut absent = Vec::new();
    for (old, new) in replaced {
        let old = fenced(old);
        match text.find(&old) {
            Some(at) => text.replace_range(at..at + old.len(), &fenced(new)),
            None => absent.push(old.lines().nth(3).unwrap_or_default().to_string()),
        }
    }
    if absent.is_empty() {
        Ok(text)
    } else {
        Err(format!(
            "the translation lacks these blocks verbatim, first output lines: {absent:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block cut down to some lines of a report keeps those kinds of line from the new run,
    /// a verdict line whatever it now says; a block of another shape gets the whole output.
    #[test]
    fn a_block_keeps_the_kinds_of_line_it_held() {
        let block: Vec<String> = [
            "machine: box",
            "load: 0.5 (quiet)",
            "command: loadgen run --conns 50",
            "OK: 50/50 connected, 1000 msg/s acknowledged",
            "latency (µs)                 count      p50      p99",
            "  round trip (corrected)      6000      173      349",
            "cpu          generator 15.1% of one core, server 9%",
        ]
        .map(String::from)
        .to_vec();
        let output = [
            "FAILED: the generator fell behind",
            "",
            "target       chat server at 127.0.0.1:9010",
            "connections  50 connected, 0 failed",
            "latency (µs)                 count      p50      p99",
            "  round trip (corrected)      5000      180      400",
            "  round trip (uncorrected)    5000      120      300",
            "cpu          generator 99.0% of one core, server 9%",
            "memory       server RSS 3560 KiB before",
        ]
        .join("\n");
        let (kept, left_out) = keep_kinds(&block, &output);
        assert_eq!(
            kept,
            [
                "FAILED: the generator fell behind",
                "latency (µs)                 count      p50      p99",
                "  round trip (corrected)      5000      180      400",
                "cpu          generator 99.0% of one core, server 9%",
            ]
        );
        assert_eq!(
            left_out.into_iter().collect::<Vec<_>>(),
            [
                "blank lines",
                "connections",
                "memory",
                "round trip (uncorrected)",
                "target"
            ]
        );
        let other = ["machine: box", "command: ps", "first"].map(String::from);
        let (kept, left_out) = keep_kinds(&other, "PID 7\nPID 8");
        assert_eq!(kept, ["PID 7", "PID 8"]);
        assert!(left_out.is_empty());
    }

    /// The n-th block quoting a command gets the n-th run of it; `only` leaves the other
    /// blocks as they were; a block whose run is missing is named; the translation gets the
    /// same blocks.
    #[test]
    fn measured_blocks_take_their_runs_in_order() {
        let lesson = "```sh\nrun --rate 1\nps\nrun --rate 1\n```\n\nAlone:\n\n```measured\n\
                      machine: old\nload: 0.1 (quiet)\ncommand: run --rate 1\nfirst\n```\n\n\
                      ```measured\nmachine: old\nload: 0.1 (quiet)\ncommand: ps\nPID\n```\n\n\
                      ```measured\nmachine: old\nload: 0.2 (quiet)\ncommand: run --rate 1\nsecond\n\
                      ```\n\n```measured\nmachine: old\nload: 0.2\ncommand: run --rate 1\nthird\n```\n";
        let capture = |command: &str, output: &str, load| Capture {
            command: command.into(),
            output: output.into(),
            load,
        };
        let runs = [
            capture("run  --rate 1", "OK: 1\nlatency\n", 1.5),
            capture("ps", "PID 7\n", 1.0),
            capture("run --rate 1", "OK: 2\n", 1.25),
        ];
        let new = rewrite(lesson, &runs, "--rate", "box, 2 cores", "quiet");
        assert_eq!(new.replaced.len(), 2);
        assert_eq!(new.missing.len(), 1, "{:?}", new.missing);
        assert!(
            new.missing[0].contains("fewer than 3 times"),
            "{:?}",
            new.missing
        );
        assert!(new.text.contains(
            "```measured\nmachine: box, 2 cores\nload: 1.50 (quiet)\ncommand: run --rate 1\n\
             OK: 1\nlatency\n```"
        ));
        assert!(new
            .text
            .contains("load: 1.25 (quiet)\ncommand: run --rate 1\nOK: 2\n```"));
        assert!(
            new.text.contains("command: ps\nPID\n```"),
            "not --rate: kept"
        );
        assert!(
            new.text.contains("command: run --rate 1\nthird\n```"),
            "no run: kept"
        );
        assert!(new.text.starts_with("```sh\n") && new.text.ends_with("```\n"));
        assert_eq!(new.text.lines().count(), lesson.lines().count() + 1);

        let chinese = lesson.replace("Alone:", "单独：");
        let carried = carry_over(&chinese, &new.replaced).expect("verbatim blocks");
        assert_eq!(carried, new.text.replace("Alone:", "单独："));
        let drifted = chinese.replace("second", "other");
        assert!(carry_over(&drifted, &new.replaced).is_err());
    }

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
