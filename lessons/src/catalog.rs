//! The workspace's packages, binaries and examples (from `cargo metadata`), and building them.
//!
//! The lesson tests run the real binaries, freshly built: a renamed flag in a server's source
//! then breaks the lesson test at once, instead of passing against an old binary. An example
//! (`cargo run -p chat-async --example hand_written_future`) is built the same way, on demand.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Package name -> its binaries and its examples, and where the workspace is.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    bins: BTreeMap<String, Vec<String>>,
    /// Package name -> its examples (`examples/*.rs`), which a lesson runs with `cargo run
    /// --example`.
    examples: BTreeMap<String, Vec<String>>,
    root: PathBuf,
}

impl Catalog {
    /// The workspace around this crate, read once per test process.
    pub fn workspace() -> Result<&'static Catalog, String> {
        static CATALOG: OnceLock<Result<Catalog, String>> = OnceLock::new();
        CATALOG
            .get_or_init(read_metadata)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A catalog from literal pairs (unit tests).
    pub fn from_pairs(pairs: &[(&str, &[&str])]) -> Catalog {
        Catalog {
            bins: pairs
                .iter()
                .map(|(p, b)| (p.to_string(), b.iter().map(|s| s.to_string()).collect()))
                .collect(),
            examples: BTreeMap::new(),
            root: PathBuf::new(),
        }
    }

    /// The same, with examples (package, its examples).
    pub fn with_examples(mut self, pairs: &[(&str, &[&str])]) -> Catalog {
        for (package, names) in pairs {
            let names = names.iter().map(|s| s.to_string());
            self.examples
                .entry(package.to_string())
                .or_default()
                .extend(names);
        }
        self
    }

    pub fn examples_of(&self, package: &str) -> &[String] {
        self.examples.get(package).map_or(&[], Vec::as_slice)
    }

    /// The package of example `name`.
    pub fn package_of_example(&self, name: &str) -> Option<&str> {
        self.examples
            .iter()
            .find(|(_, names)| names.iter().any(|n| n == name))
            .map(|(p, _)| p.as_str())
    }

    /// The workspace root (where `Cargo.toml` with `[workspace]` is).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bins_of(&self, package: &str) -> Option<&[String]> {
        self.bins.get(package).map(Vec::as_slice)
    }

    pub fn has_package(&self, package: &str) -> bool {
        self.bins.contains_key(package)
    }

    /// The package that builds binary `bin`.
    pub fn package_of(&self, bin: &str) -> Option<&str> {
        self.bins
            .iter()
            .find(|(_, bins)| bins.iter().any(|b| b == bin))
            .map(|(p, _)| p.as_str())
    }

    /// A server model binary: a `chat-*` package whose binary has the package's name
    /// (`chat-epoll`), unlike the client (package `chat-client`, binary `chat`).
    pub fn is_server(&self, word: &str) -> bool {
        word.starts_with("chat-")
            && self
                .bins
                .get(word)
                .is_some_and(|bins| bins.iter().any(|b| b == word))
    }

    /// Every binary name of the workspace.
    pub fn all_bins(&self) -> impl Iterator<Item = &str> {
        self.bins.values().flatten().map(String::as_str)
    }

    /// Builds every binary of the workspace (debug profile), once per test process, and returns
    /// the folder they are in. One build for all, even for a lesson that runs two of them:
    /// cargo unifies the features of shared dependencies across the packages of one build, so
    /// building each lesson's own set of packages compiled tokio and its kin again for each
    /// new set (minutes of a CI run); one set means one build, and every later call is free.
    pub fn build_all(&self) -> Result<PathBuf, String> {
        self.build_all_as(Profile::Debug)
    }

    /// [`build_all`](Self::build_all) in either profile: release is what a lesson's numbers are
    /// measured with.
    pub fn build_all_as(&self, profile: Profile) -> Result<PathBuf, String> {
        static BUILT: [OnceLock<Result<PathBuf, String>>; 2] = [OnceLock::new(), OnceLock::new()];
        BUILT[profile as usize]
            .get_or_init(|| cargo_build(&self.root, self.bins.keys(), profile))
            .clone()
    }

    /// Builds the examples named, each with its package; they land in the `examples` folder
    /// beside the binaries of the same profile, which the lesson's `PATH` includes. A build of
    /// its own, so that the dev-dependencies an example may use do not change the features
    /// the binaries are built with.
    pub fn build_examples(&self, names: &BTreeSet<String>, profile: Profile) -> Result<(), String> {
        static BUILT: Mutex<BTreeSet<(String, bool)>> = Mutex::new(BTreeSet::new());
        let release = profile == Profile::Release;
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !built.contains(&((*n).clone(), release)))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut command = Command::new(cargo());
        command.arg("build").current_dir(&self.root);
        if release {
            command.arg("--release");
        }
        for name in &missing {
            let package = self
                .package_of_example(name)
                .ok_or_else(|| format!("no example {name} in the workspace"))?;
            command.args(["-p", package, "--example", name]);
        }
        let status = command
            .status()
            .map_err(|e| format!("cannot run cargo build: {e}"))?;
        if !status.success() {
            return Err(format!(
                "building the examples {missing:?} failed (see the compiler output above)"
            ));
        }
        built.extend(missing.into_iter().map(|n| (n.clone(), release)));
        Ok(())
    }
}

/// The cargo that runs these tests (so the same toolchain builds the binaries).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn read_metadata() -> Result<Catalog, String> {
    let output = Command::new(cargo())
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err("cargo metadata failed".into());
    }
    let meta: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let root = meta["workspace_root"]
        .as_str()
        .ok_or("metadata has no workspace_root")?;
    let mut bins = BTreeMap::new();
    let mut examples = BTreeMap::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default().to_string();
        let targets_of = |kind: &str| -> Vec<String> {
            package["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == kind))
                })
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        };
        examples.insert(name.clone(), targets_of("example"));
        bins.insert(name, targets_of("bin"));
    }
    Ok(Catalog {
        bins,
        examples,
        root: PathBuf::from(root),
    })
}

/// What the binaries are built as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The tests' build: quick to compile.
    Debug = 0,
    /// The build every measured block names.
    Release = 1,
}

/// `cargo build --bins -p ...`; returns the folder of the executables it reports.
fn cargo_build<'a>(
    root: &Path,
    packages: impl Iterator<Item = &'a String> + Clone,
    profile: Profile,
) -> Result<PathBuf, String> {
    let mut command = Command::new(cargo());
    command
        .args([
            "build",
            "--bins",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if profile == Profile::Release {
        command.arg("--release");
    }
    for p in packages.clone() {
        command.args(["-p", p]);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo build -p {}` failed (see the compiler output above)",
            packages.cloned().collect::<Vec<_>>().join(" -p ")
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .find_map(|exe| exe.parent().map(Path::to_path_buf))
        .ok_or_else(|| "cargo build reported no executable".to_string())
}
