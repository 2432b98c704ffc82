//! The workspace's packages and binaries (from `cargo metadata`), and building them.
//!
//! The lesson tests run the real binaries, freshly built: a renamed flag in a server's source
//! then breaks the lesson test at once, instead of passing against an old binary.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Package name -> its binaries, and where the workspace is.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    bins: BTreeMap<String, Vec<String>>,
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
            root: PathBuf::new(),
        }
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

    /// Builds the binaries of `packages` (debug profile) and returns the folder they are in.
    /// Each package is built at most once per test process; cargo itself makes a build of an
    /// unchanged package a no-op.
    pub fn build(&self, packages: &BTreeSet<String>) -> Result<PathBuf, String> {
        static BUILT: Mutex<Option<(BTreeSet<String>, PathBuf)>> = Mutex::new(None);
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((done, dir)) = built.as_ref() {
            if packages.is_subset(done) {
                return Ok(dir.clone());
            }
        }
        let dir = cargo_build(&self.root, packages)?;
        let mut done = built.take().map(|(d, _)| d).unwrap_or_default();
        done.extend(packages.iter().cloned());
        *built = Some((done, dir.clone()));
        Ok(dir)
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
    for package in meta["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default().to_string();
        let names = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
            })
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect();
        bins.insert(name, names);
    }
    Ok(Catalog {
        bins,
        root: PathBuf::from(root),
    })
}

/// `cargo build --bins -p ...`; returns the folder of the executables it reports.
fn cargo_build(root: &Path, packages: &BTreeSet<String>) -> Result<PathBuf, String> {
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
    for p in packages {
        command.args(["-p", p]);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo build -p {}` failed (see the compiler output above)",
            packages.iter().cloned().collect::<Vec<_>>().join(" -p ")
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .find_map(|exe| exe.parent().map(Path::to_path_buf))
        .ok_or_else(|| "cargo build reported no executable".to_string())
}
