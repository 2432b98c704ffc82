//! The exercises (`lessons/exercises/NN-name/`), and proving their checks: each check must pass
//! on its reference solution and fail on the unmodified starting point, so that no check passes
//! before the student has done anything.
//!
//! An exercise folder holds `check` (the grading command, bash), `exercise.json` (what the
//! harness needs to know, read into [`Exercise`]) and the reference solution. A check takes one
//! argument, the student's hand-in folder; the harness builds two hand-ins for each exercise and
//! runs the check on both:
//!
//! ```text
//! {
//!   "number": 16,                                   the exercise's number in INSTRUCTORS.md
//!   "lessons": ["02"],                              the lessons whose Exercises section has it
//!   "reference": {                                  the reference hand-in:
//!     "files": "solution/handin",                     a folder copied in (reports, answers.txt)
//!     "server": {"bin": "chat-threads",               an executable `server` that runs a binary
//!                "patch": "solution/blocking.diff"}     built from the workspace with a patch
//!   },
//!   "start": {"server": {"bin": "chat-threads"}},   the starting point (omitted: an empty folder)
//!   "start_fails_with": "order.stalled_reader"      a text the check's FAIL must contain
//! }
//! ```
//!
//! An entry named `server`, `program` or `client` becomes an executable script in the hand-in
//! (`exec BINARY ARGS "$@"`); `bin` is a binary of the workspace (built by the harness, found on
//! PATH), or of the workspace with `patch` applied: a copy of the workspace's sources in
//! `target/tmp`, patched, built with its own target directory, and unpatched again (one patch
//! at a time; the copy's dependencies are built once and then shared by every patch).
//! The conventions for students and exercise authors are in `lessons/exercises/README.md`.

use crate::catalog::{cargo, Catalog};
use crate::proc::Proc;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// How long one check may run (a full `loadgen check` waits for replies that never come).
const CHECK_TIMEOUT: Duration = Duration::from_secs(300);

/// Executables a hand-in may hold, made from an entry of the same name.
pub const ENTRY_POINTS: &[&str] = &["server", "program", "client"];

/// The folder of the exercises.
pub fn exercises_dir() -> PathBuf {
    crate::lessons_dir().join("exercises")
}

/// One exercise, from its folder and `exercise.json`.
#[derive(Debug, Clone)]
pub struct Exercise {
    /// `NN-name`, the folder's name.
    pub name: String,
    pub dir: PathBuf,
    /// Its number in the catalogue of INSTRUCTORS.md.
    pub number: u32,
    /// The lessons (`"02"`) whose Exercises section has it.
    pub lessons: Vec<String>,
    /// How to assemble the reference hand-in, and the starting point's.
    pub reference: Value,
    pub start: Value,
    /// Text the check's output must contain when it fails on the starting point: it fails for
    /// the reason the exercise is about, not because something else broke.
    pub start_fails_with: String,
}

/// Every exercise folder (`NN-name` with an `exercise.json`), sorted.
pub fn all() -> Result<Vec<Exercise>, String> {
    let mut exercises = Vec::new();
    let dir = exercises_dir();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() && name.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            exercises.push(Exercise::load(&path)?);
        }
    }
    exercises.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(exercises)
}

impl Exercise {
    /// Reads the exercise in folder `dir`.
    pub fn load(dir: &Path) -> Result<Exercise, String> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let manifest = dir.join("exercise.json");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| format!("{}: {e}", manifest.display()))?;
        let json: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
        let number = json["number"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("{}: no `number`", manifest.display()))?;
        let lessons = json["lessons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str().map(str::to_string))
            .collect();
        Ok(Exercise {
            name,
            dir: dir.to_path_buf(),
            number,
            lessons,
            reference: json["reference"].clone(),
            start: json.get("start").cloned().unwrap_or(Value::Null),
            start_fails_with: json["start_fails_with"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// Everything wrong with the folder itself: a check that is missing or not executable, a
    /// manifest naming files that are not there, a number that does not match the name.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let check = self.dir.join("check");
        if !is_executable(&check) {
            problems.push(format!("{}: no executable `check`", self.name));
        }
        if !self.name.starts_with(&format!("{:02}-", self.number)) {
            problems.push(format!(
                "{}: its number is {}, so its folder must start with {:02}-",
                self.name, self.number, self.number
            ));
        }
        if self.start_fails_with.is_empty() {
            problems.push(format!(
                "{}: exercise.json must say `start_fails_with` (the FAIL reason expected on the \
                 starting point)",
                self.name
            ));
        }
        for (which, spec) in [("reference", &self.reference), ("start", &self.start)] {
            if let Some(files) = spec["files"].as_str() {
                if !self.dir.join(files).is_dir() {
                    problems.push(format!(
                        "{}: {which} files {files} is not a folder",
                        self.name
                    ));
                }
            }
            for entry in ENTRY_POINTS {
                if let Some(patch) = spec[*entry]["patch"].as_str() {
                    if !self.dir.join(patch).is_file() {
                        problems.push(format!("{}: {which} patch {patch} is missing", self.name));
                    }
                }
            }
        }
        if !self.dir.join("README.md").is_file() {
            problems.push(format!(
                "{}: no README.md (the task, the hand-in, what the check tests)",
                self.name
            ));
        }
        if self.reference.is_null() {
            problems.push(format!("{}: exercise.json has no `reference`", self.name));
        }
        problems
    }

    /// The workspace binaries the two hand-ins run (the harness builds their packages).
    pub fn binaries(&self) -> BTreeSet<String> {
        [&self.reference, &self.start]
            .into_iter()
            .flat_map(|spec| ENTRY_POINTS.iter().map(move |e| &spec[*e]))
            .filter(|entry| entry["patch"].is_null())
            .filter_map(|entry| entry["bin"].as_str().map(str::to_string))
            .collect()
    }
}

/// Where the exercise's check command must be named and is not: INSTRUCTORS.md and the lessons
/// of `exercise.lessons`, in English and in Chinese (`lessons/zh/`).
pub fn unnamed_check(exercise: &Exercise) -> Vec<String> {
    let command = format!("exercises/{}/check", exercise.name);
    let lessons_dir = crate::lessons_dir();
    let mut files = vec![PathBuf::from("INSTRUCTORS.md")];
    for lesson in &exercise.lessons {
        match lesson_file(&lessons_dir, lesson) {
            Some(file) => files.push(file),
            None => return vec![format!("{}: no lesson {lesson}", exercise.name)],
        }
    }
    let mut problems = Vec::new();
    for file in files {
        for edition in [lessons_dir.clone(), lessons_dir.join("zh")] {
            let path = edition.join(&file);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if !text.contains(&command) {
                problems.push(format!("{} does not name `{command}`", path.display()));
            }
        }
    }
    problems
}

/// The file of lesson `number` ("02" gives `02-threads.md`).
fn lesson_file(lessons_dir: &Path, number: &str) -> Option<PathBuf> {
    let prefix = format!("{number}-");
    std::fs::read_dir(lessons_dir)
        .ok()?
        .flatten()
        .map(|entry| PathBuf::from(entry.file_name()))
        .find(|name| {
            let name = name.to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".md")
        })
}

/// What one run of a check gave.
#[derive(Debug)]
pub struct CheckRun {
    /// The exit status (`None`: it ran past [`CHECK_TIMEOUT`] and was stopped).
    pub code: Option<i32>,
    pub output: String,
}

impl CheckRun {
    /// The output's last lines, for a failure message.
    pub fn tail(&self) -> String {
        let lines: Vec<&str> = self.output.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// Assembles the hand-in `spec` describes in a fresh folder under `scratch` and runs the
/// exercise's check on it, with `bin_dir` first on PATH.
pub fn run_check(
    exercise: &Exercise,
    spec: &Value,
    which: &str,
    bin_dir: &Path,
    scratch: &Path,
) -> Result<CheckRun, String> {
    let handin = scratch.join(format!("{}-{which}", exercise.name));
    let _ = std::fs::remove_dir_all(&handin);
    std::fs::create_dir_all(&handin).map_err(|e| format!("{}: {e}", handin.display()))?;
    if let Some(files) = spec["files"].as_str() {
        copy_tree(&exercise.dir.join(files), &handin)?;
    }
    for entry in ENTRY_POINTS {
        let Some(bin) = spec[*entry]["bin"].as_str() else {
            continue;
        };
        let binary = match spec[*entry]["patch"].as_str() {
            Some(patch) => {
                let copy = scratch.join(format!("{}-{bin}", exercise.name));
                build_patched(&exercise.dir.join(patch), bin, &copy, scratch)?;
                copy
            }
            None => bin_dir.join(bin),
        };
        let args: Vec<String> = spec[*entry]["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(shell_quote))
            .collect();
        let script = format!(
            "#!/bin/sh\nexec {} {} \"$@\"\n",
            shell_quote(&binary.to_string_lossy()),
            args.join(" ")
        );
        write_executable(&handin.join(entry), &script)?;
    }
    let command = format!(
        "{} {}",
        shell_quote(&exercise.dir.join("check").to_string_lossy()),
        shell_quote(&handin.to_string_lossy())
    );
    let root = Catalog::workspace()?.root().to_path_buf();
    let mut proc =
        Proc::spawn(&command, bin_dir, &root).map_err(|e| format!("cannot run {command}: {e}"))?;
    let status = proc.wait(CHECK_TIMEOUT);
    proc.stop(Duration::from_secs(5));
    Ok(CheckRun {
        code: status.and_then(|s| s.code()),
        output: proc.output(),
    })
}

/// Builds binary `bin` of the workspace with `patch` applied, and copies it to `dest`. The
/// workspace's sources are copied once per test process to `scratch/workspace`; patches are
/// applied there one at a time, and reverted after the build.
pub fn build_patched(patch: &Path, bin: &str, dest: &Path, scratch: &Path) -> Result<(), String> {
    static COPY: Mutex<bool> = Mutex::new(false);
    let mut copied = COPY.lock().unwrap_or_else(|e| e.into_inner());
    let catalog = Catalog::workspace()?;
    let package = catalog
        .package_of(bin)
        .ok_or_else(|| format!("no package builds a binary `{bin}`"))?
        .to_string();
    let workspace = scratch.join("workspace");
    if !*copied {
        let _ = std::fs::remove_dir_all(&workspace);
        copy_tree(catalog.root(), &workspace)?;
        *copied = true;
    }
    git_apply(&workspace, patch, false)?;
    let built = cargo_build_copy(&workspace, &scratch.join("target"), &package, bin);
    // Unpatch whatever the build did: the next exercise starts from the unmodified sources.
    let reverted = git_apply(&workspace, patch, true);
    let binary = built?;
    reverted?;
    std::fs::copy(&binary, dest)
        .map(drop)
        .map_err(|e| format!("copying {} to {}: {e}", binary.display(), dest.display()))
}

fn git_apply(workspace: &Path, patch: &Path, reverse: bool) -> Result<(), String> {
    let mut command = Command::new("git");
    // The copy lies inside the workspace's own repository (target/tmp): git must not find it,
    // or it applies the patch relative to that repository and skips every path outside the
    // current folder. Above the copy, git looks no further.
    let ceiling = workspace.parent().unwrap_or(workspace);
    command
        .arg("apply")
        .current_dir(workspace)
        .env("GIT_CEILING_DIRECTORIES", ceiling);
    if reverse {
        command.arg("--reverse");
    }
    let output = command
        .arg(patch)
        .output()
        .map_err(|e| format!("cannot run git apply: {e}"))?;
    match output.status.success() {
        true => Ok(()),
        false => Err(format!(
            "`git apply {}{}` failed in the copy of the workspace (does the patch still match \
             the sources?): {}",
            if reverse { "--reverse " } else { "" },
            patch.display(),
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

fn cargo_build_copy(
    workspace: &Path,
    target: &Path,
    package: &str,
    bin: &str,
) -> Result<PathBuf, String> {
    let output = Command::new(cargo())
        .args([
            "build",
            "--quiet",
            "-p",
            package,
            "--bin",
            bin,
            "--target-dir",
        ])
        .arg(target)
        .current_dir(workspace)
        .output()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the patched `cargo build -p {package} --bin {bin}` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(target.join("debug").join(bin))
}

/// Copies `from` into `to`, leaving out build output and version control (`target`, `.git`).
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", src.display()))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", src.display()))?;
        }
    }
    Ok(())
}

fn write_executable(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `text` as one word for sh (single quotes).
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quoting survives spaces and single quotes.
    #[test]
    fn quotes_for_sh() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
