//! Checking that every number a lesson quotes comes from a run the learner can repeat.
//!
//! Results live in blocks fenced as `measured`, whose lines include `machine: ...` (the CPU,
//! its cores, the kernel, the build) and `command: ...` (exactly as the lesson runs it),
//! followed by what the command printed.
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

    /// A figure written against Chinese text, with no space around it, is found too.
    #[test]
    fn finds_figures_beside_chinese_text() {
        let doc = Document::parse("中位数为108 µs，吞吐量是12,345 msg/s的水平。\n");
        let figures: Vec<String> = quoted_figures(&doc).into_iter().map(|f| f.1).collect();
        assert_eq!(figures, ["108 µs", "12,345 msg/s"]);
    }
}
