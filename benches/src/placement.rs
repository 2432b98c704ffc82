//! Where a bench's server and its generator run: on CPUs of their own, or wherever the
//! scheduler puts them.
//!
//! On two cores there is no choice to make: both share them. On a machine with more, a ratio
//! between two servers is only worth quoting when each ran on the same cores and the generator
//! kept off them, so a bench reads two variables, each a CPU list as `taskset -c` takes it:
//!
//! ```text
//! C10K_SERVER_CPUS=0-1 C10K_GENERATOR_CPUS=2-15 cargo bench -p c10k-benches --bench redis_ratio
//! ```
//!
//! The server (Redis too) runs on the first set, every thread of it; `loadgen run` and the
//! processes it starts run on the second, and size their threads by it. Either may be left out
//! (that side is not pinned). The table's context line says which placement it was measured
//! with.

use loadgen::affinity::CpuSet;

/// The CPUs of the server, and of the generator: `None` where the scheduler decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub server: Option<CpuSet>,
    pub generator: Option<CpuSet>,
}

/// The variable that pins the server.
pub const SERVER_CPUS: &str = "C10K_SERVER_CPUS";
/// The variable that pins the generator.
pub const GENERATOR_CPUS: &str = "C10K_GENERATOR_CPUS";

impl Placement {
    /// From `C10K_SERVER_CPUS` and `C10K_GENERATOR_CPUS` (unset or empty: not pinned). `Err`
    /// says which variable is wrong and why: a list that does not parse, or CPUs this process
    /// may not use.
    pub fn from_env() -> Result<Placement, String> {
        let var = |name: &str| std::env::var(name).ok();
        Placement::from_values(var(SERVER_CPUS).as_deref(), var(GENERATOR_CPUS).as_deref())
    }

    /// [`from_env`](Self::from_env) with the two values given.
    pub fn from_values(server: Option<&str>, generator: Option<&str>) -> Result<Placement, String> {
        let set = |name: &str, value: Option<&str>| -> Result<Option<CpuSet>, String> {
            let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            let set = CpuSet::parse(value).map_err(|e| format!("{name}: {e}"))?;
            set.check_available().map_err(|e| format!("{name}: {e}"))?;
            Ok(Some(set))
        };
        Ok(Placement {
            server: set(SERVER_CPUS, server)?,
            generator: set(GENERATOR_CPUS, generator)?,
        })
    }

    /// For the report: `server on CPUs 0-1, generator on CPUs 2-15`, whether they share CPUs, or
    /// that a side is not pinned.
    pub fn describe(&self) -> String {
        let side = |who: &str, set: &Option<CpuSet>| match set {
            Some(set) if set.cpus().len() == 1 => format!("{who} on CPU {set}"),
            Some(set) => format!("{who} on CPUs {set}"),
            None => format!("{who} not pinned"),
        };
        let mut text = format!(
            "{}, {}",
            side("server", &self.server),
            side("generator", &self.generator)
        );
        if let (Some(server), Some(generator)) = (&self.server, &self.generator) {
            if server.overlaps(generator) {
                text.push_str(" (they share CPUs)");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_and_empty_pin_nothing() {
        let placement = Placement::from_values(None, Some(" ")).expect("valid");
        assert_eq!(placement, Placement::default());
        assert_eq!(
            placement.describe(),
            "server not pinned, generator not pinned"
        );
    }

    #[test]
    fn sets_are_read_checked_and_described() {
        let first = CpuSet::available().expect("sched_getaffinity").cpus()[0];
        let placement =
            Placement::from_values(Some(&first.to_string()), None).expect("a CPU of ours");
        assert_eq!(
            placement.describe(),
            format!("server on CPU {first}, generator not pinned")
        );
        let both = Some(first.to_string());
        let shared = Placement::from_values(both.as_deref(), both.as_deref()).expect("valid");
        assert!(shared.describe().ends_with("(they share CPUs)"));
        let why = Placement::from_values(Some("1-0"), None).expect_err("backwards");
        assert!(why.starts_with("C10K_SERVER_CPUS: CPU list `1-0`"), "{why}");
        let why = Placement::from_values(None, Some("1000")).expect_err("no such CPU");
        assert!(why.starts_with("C10K_GENERATOR_CPUS:"), "{why}");
        assert!(why.contains("not available"), "{why}");
    }
}
