//! Every number the course quotes comes from a run the lesson shows how to repeat.

use lessons::measured::check_numbers;

/// Each ```measured block names its machine and a command the lesson runs; each throughput or
/// latency figure in the prose appears in one of the lesson's measured blocks.
#[test]
fn every_figure_comes_from_a_repeatable_run() {
    let failures: Vec<String> = lessons::markdown_files()
        .iter()
        .filter_map(|p| check_numbers(p).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
