//! Quick mode: run every bench briefly, as a smoke test.
//!
//! A full `cargo bench` takes minutes; CI only needs to know the benches still build and run.
//! With `C10K_BENCH_QUICK=1` each criterion bench warms up and measures for a fraction of a
//! second with the smallest sample criterion accepts, and the `c10k` comparison runs small
//! connection counts for a second each. The numbers are then rough, and that is the point: the
//! run proves the code paths work, it is not a measurement.

/// The environment variable that turns quick mode on.
pub const QUICK_ENV: &str = "C10K_BENCH_QUICK";

/// Whether quick mode is on: `C10K_BENCH_QUICK` is set to anything but empty, `0` or `false`.
pub fn quick_mode() -> bool {
    is_quick(std::env::var(QUICK_ENV).ok().as_deref())
}

/// The rule behind [`quick_mode`], apart from the environment so it can be tested.
fn is_quick(value: Option<&str>) -> bool {
    match value.map(str::trim) {
        None | Some("" | "0") => false,
        Some(v) => !v.eq_ignore_ascii_case("false"),
    }
}

#[cfg(test)]
mod tests {
    use super::is_quick;

    /// `1` (what CI sets) and other truthy values turn quick mode on; unset, empty, `0` and
    /// `false` leave the full benches.
    #[test]
    fn quick_mode_values() {
        assert!(is_quick(Some("1")));
        assert!(is_quick(Some("yes")));
        assert!(!is_quick(None));
        assert!(!is_quick(Some("")));
        assert!(!is_quick(Some("0")));
        assert!(!is_quick(Some("FALSE")));
    }
}
