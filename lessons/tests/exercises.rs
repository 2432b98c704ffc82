//! Every exercise is graded by a command, `lessons/exercises/NN-name/check HANDIN`, and each
//! check is proven here: it passes on the exercise's reference solution and fails on the
//! unmodified starting point, for the reason the exercise is about. The catalogue
//! (INSTRUCTORS.md, both editions) and the lessons' Exercises sections name every check. The
//! conventions are in `lessons/exercises/README.md` and in `lessons::exercises`.

use lessons::catalog::Catalog;
use lessons::exercises::{self, exercises_dir, run_check, CheckRun, Exercise};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Exercises whose check needs a socket receive buffer of 8 MiB (exercise 27 holds a 3.6 MB burst
/// in one socket): the kernel caps SO_RCVBUF at twice `net.core.rmem_max`. `.ci/run` raises it;
/// on a machine where it is lower, these checks cannot grade (exit 2), and their test says NOT RUN
/// and why instead of failing on the machine.
const NEEDS_RMEM_MAX: &[&str] = &["27-break-the-edge"];

/// The `net.core.rmem_max` those checks need.
const RMEM_MAX: u64 = 4 * 1024 * 1024;

macro_rules! exercise_tests {
    ($($test:ident => $name:literal,)*) => {
        /// The exercise folders that have a test below.
        const TESTED: &[&str] = &[$($name),*];
        $(
            #[test]
            fn $test() {
                prove($name);
            }
        )*
    };
}

exercise_tests! {
    exercise_01_recv_timing => "01-recv-timing",
    exercise_02_predict_the_backlog => "02-predict-the-backlog",
    exercise_03_shrink_the_backlog => "03-shrink-the-backlog",
    exercise_04_blocking_server => "04-blocking-server",
    exercise_05_polite_refusal => "05-polite-refusal",
    exercise_06_select_echo => "06-select-echo",
    exercise_07_stress_100x100 => "07-stress-100x100",
    exercise_08_find_the_knee => "08-find-the-knee",
    exercise_09_catch_a_liar => "09-catch-a-liar",
    exercise_12_login => "12-login",
    exercise_13_history => "13-history",
    exercise_14_file_transfer => "14-file-transfer",
    exercise_16_classic_bug => "16-classic-bug",
    exercise_17_too_small_a_stack => "17-too-small-a-stack",
    exercise_18_ten_thousand_threads => "18-ten-thousand-threads",
    exercise_20_predict_the_pool => "20-predict-the-pool",
    exercise_21_size_the_pool => "21-size-the-pool",
    exercise_22_give_up_politely => "22-give-up-politely",
    exercise_24_count_the_scan => "24-count-the-scan",
    exercise_25_always_writable => "25-always-writable",
    exercise_27_break_the_edge => "27-break-the-edge",
    exercise_29_ten_thousand_idle => "29-ten-thousand-idle",
    exercise_30_epoll_echo => "30-epoll-echo",
    exercise_32_when_the_hand_off_pays => "32-when-the-hand-off-pays",
    exercise_37_async_server => "37-async-server",
    exercise_39_one_thread => "39-one-thread",
    exercise_40_fan_out_is_the_cost => "40-fan-out-is-the-cost",
    exercise_41_memory_per_connection => "41-memory-per-connection",
    exercise_42_backlog_under_a_burst => "42-backlog-under-a-burst",
}

/// Runs the check of exercise `name` on its starting point (it must fail, saying
/// `start_fails_with`) and on its reference solution (it must pass), side by side.
fn prove(name: &str) {
    let exercise = Exercise::load(&exercises_dir().join(name)).unwrap_or_else(|e| panic!("{e}"));
    let problems = exercise.problems();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let bin_dir = build_all();
    if NEEDS_RMEM_MAX.contains(&name) {
        let rmem_max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if rmem_max < RMEM_MAX {
            eprintln!(
                "{name}: NOT RUN: net.core.rmem_max is {rmem_max}, under {RMEM_MAX}: the check \
                 cannot hold its burst in one socket (sysctl -w net.core.rmem_max={RMEM_MAX})"
            );
            return;
        }
    }
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("exercises");
    let check = |hand_in: &serde_json::Value, label: &str| {
        run_check(&exercise, hand_in, label, &bin_dir, &scratch)
    };
    let (start, reference) = std::thread::scope(|s| {
        let start = s.spawn(|| check(&exercise.start, "start"));
        let reference = s.spawn(|| check(&exercise.reference, "reference"));
        (join(start), join(reference))
    });
    let start = start.unwrap_or_else(|e| panic!("{e}"));
    let reference = reference.unwrap_or_else(|e| panic!("{e}"));
    // A machine too busy to grade a measurement says so (exit 2): one more try, as a person
    // would, before calling it a failure.
    let reference = if reference.code == Some(2) {
        eprintln!(
            "{name}: reference: the check could not grade, once more:\n{}",
            reference.tail()
        );
        check(&exercise.reference, "reference").unwrap_or_else(|e| panic!("{e}"))
    } else {
        reference
    };
    let mut failures = Vec::new();
    if reference.code != Some(0) || !reference.output.contains(&format!("PASS {name}")) {
        failures.push(describe("the reference solution must pass", &reference));
    }
    if start.code != Some(1) {
        failures.push(describe("the starting point must fail (exit 1)", &start));
    } else if !start.output.contains(&exercise.start_fails_with) {
        failures.push(describe(
            &format!(
                "the starting point must fail saying {:?}",
                exercise.start_fails_with
            ),
            &start,
        ));
    }
    assert!(failures.is_empty(), "{name}:\n\n{}", failures.join("\n\n"));
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|_| panic!("a check's thread panicked"))
}

fn describe(what: &str, run: &CheckRun) -> String {
    let how = match run.code {
        Some(code) => format!("it exited {code}"),
        None => "it ran out of time".to_string(),
    };
    format!("{what}, but {how}:\n{}", run.tail())
}

/// Builds every binary of the workspace once (see `Catalog::build_all`: one set of features,
/// shared with the lesson tests), after checking that each binary the exercises run (their
/// hand-ins, their checks' `NEEDS`, and loadgen) is one of ours; returns their folder.
fn build_all() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let catalog = Catalog::workspace()?;
        let mut binaries: BTreeSet<String> = BTreeSet::from(["loadgen".to_string()]);
        for exercise in exercises::all()? {
            binaries.extend(exercise.binaries());
            binaries.extend(needs(&exercise.dir.join("check")));
        }
        if let Some(stranger) = binaries.iter().find(|b| catalog.package_of(b).is_none()) {
            return Err(format!("no package builds `{stranger}`"));
        }
        catalog.build_all()
    });
    built.clone().unwrap_or_else(|e| panic!("{e}"))
}

/// The workspace binaries a check needs: its `NEEDS="..."` line, less the system's tools.
fn needs(check: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(check).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("NEEDS=\""))
        .flat_map(|l| l.trim_end_matches('"').split_whitespace())
        .filter(|tool| Catalog::workspace().is_ok_and(|c| c.package_of(tool).is_some()))
        .map(str::to_string)
        .collect()
}

/// Every exercise folder, read (a folder that cannot be read fails the test).
fn all_exercises() -> Vec<Exercise> {
    exercises::all().unwrap_or_else(|e| panic!("{e}"))
}

/// What `check` finds wrong with the exercises, all of them together.
fn in_every_exercise(check: impl Fn(&Exercise) -> Vec<String>) -> Vec<String> {
    all_exercises().iter().flat_map(check).collect()
}

/// Every exercise folder has a test above, and no test names a folder that is gone.
#[test]
fn every_exercise_is_tested() {
    let on_disk: BTreeSet<String> = all_exercises().into_iter().map(|e| e.name).collect();
    let tested: BTreeSet<String> = TESTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        on_disk, tested,
        "give each folder of lessons/exercises a line in exercise_tests!"
    );
}

/// Every folder is well formed: an executable check, a manifest whose files exist, a number
/// that matches the name.
#[test]
fn every_exercise_is_well_formed() {
    let problems = in_every_exercise(Exercise::problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every check is named where instructors and students look for it: the catalogue
/// (INSTRUCTORS.md, in both editions) and each lesson that assigns the exercise (both editions).
#[test]
fn every_check_is_named_by_the_catalogue_and_its_lessons() {
    let problems = in_every_exercise(exercises::unnamed_check);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
