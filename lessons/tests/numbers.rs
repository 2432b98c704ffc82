//! Every number the course quotes comes from a run the lesson shows how to repeat, and the
//! Chinese edition quotes the same numbers as the English one.

use lessons::editions::{same_numbers, translated_pairs};
use lessons::measured::check_numbers;

/// Each ```measured block, in either edition, names its machine and a command the lesson
/// runs; each throughput or latency figure in the prose appears in one of the lesson's
/// measured blocks.
#[test]
fn every_figure_comes_from_a_repeatable_run() {
    let failures = lessons::failures(&lessons::all_markdown_files(), |p| check_numbers(p));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each Chinese lesson copies its English counterpart's ```measured blocks verbatim, in the
/// same order, and its prose quotes the same figures (`msg/s`, `µs`, ...): a translation
/// cannot drift from the runs the English lesson shows.
#[test]
fn both_editions_quote_the_same_numbers() {
    let failures = lessons::failures(&translated_pairs(), |(english, chinese)| {
        same_numbers(english, chinese)
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
