//! What the `loadgen run` tests share.

use loadgen::run::RunReport;

/// Whether everything a server controls was clean: every connection opened and stayed, and no
/// copy was lost, duplicated, reordered or unparsed. The generator's punctuality is a matter
/// for benches, not for tests on a shared machine: a run may fail *only* because the generator
/// fell behind, and then it must say so (and say nothing else).
pub fn server_clean(report: &RunReport) -> bool {
    let (c, m) = (&report.connections, &report.messages);
    let only_behind = report.generator.behind && report.problems.len() == 1;
    (report.ok || only_behind)
        && c.connected == c.attempted
        && c.dropped == 0
        && m.lost == 0
        && m.duplicated == 0
        && m.out_of_order == 0
        && m.unparsed == 0
        && m.received_copies == m.expected_copies
}
