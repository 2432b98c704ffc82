//! `loadgen sweep` at small scale: real server binaries at 10 and 50 connections, a model that
//! cannot serve them, and one that cannot even start, all in the written files.

use loadgen::run::RunConfig;
use loadgen::sweep::{
    sweep, write_charts, Launch, ModelSpec, Status, SweepConfig, SweepResults, SWEEP_SCHEMA,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn binary(program: &str, name: &str, args: &[&str], note: Option<&str>) -> ModelSpec {
    ModelSpec {
        name: name.to_string(),
        launch: Launch::Binary {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
        },
        limit_note: note.map(str::to_string),
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Two real models at (10, 50) connections plus a missing binary: chat-epoll serves both
/// levels; chat-blocking (one client at a time) fails at 10 with the reason and is skipped at
/// 50; the missing binary fails with its reason. results.json/.csv/.md and the three SVG charts
/// are written, and no model is dropped from any of them.
#[test]
fn small_sweep_writes_every_file_and_keeps_failed_models() {
    let mut run = RunConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), 1);
    run.duration = Duration::from_secs(1);
    run.warmup = Duration::from_millis(200);
    run.rate = Some(5.0);
    run.room_size = 5;
    run.connect_timeout = Duration::from_secs(3);
    let config = SweepConfig {
        models: vec![
            binary(
                "chat-epoll",
                "chat-epoll (edge)",
                &["--trigger", "edge"],
                None,
            ),
            binary(
                "chat-blocking",
                "chat-blocking",
                &[],
                Some("serves one client at a time"),
            ),
            binary("/nonexistent/chat-nothing", "chat-nothing", &[], None),
        ],
        levels: vec![10, 50],
        run,
        build_missing: true,
        echo: false,
    };
    let results = sweep(&config).expect("sweep");
    assert_eq!(results.rows.len(), 6, "every model at every level");
    let row = |model: &str, conns: usize| {
        results
            .rows
            .iter()
            .find(|r| r.model == model && r.conns == conns)
            .unwrap_or_else(|| panic!("row {model} @ {conns}"))
    };
    for conns in [10, 50] {
        let epoll = row("chat-epoll (edge)", conns);
        // `behind` (served, but the busy test machine made the generator late) is not `failed`.
        assert!(
            matches!(epoll.status, Status::Ok | Status::Behind),
            "{:?}",
            epoll.reason
        );
        assert_eq!(epoll.connected, conns);
        assert!(epoll.qps > 0.0 && epoll.mem_per_conn_bytes.is_some());
    }
    let blocking = row("chat-blocking", 10);
    assert_eq!(blocking.status, Status::Failed);
    let reason = blocking.reason.as_deref().unwrap_or("");
    assert!(reason.contains("connections opened"), "{reason}");
    assert!(reason.contains("serves one client at a time"), "{reason}");
    assert_eq!(row("chat-blocking", 50).status, Status::Skipped);
    let missing = row("chat-nothing", 10);
    assert_eq!(missing.status, Status::Failed);
    assert!(missing
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("does not exist"));

    let dir = temp_dir("sweep-small");
    results.write_json(&dir.join("results.json")).expect("json");
    results.write_csv(&dir.join("results.csv")).expect("csv");
    results.write_markdown(&dir.join("results.md")).expect("md");
    let charts = write_charts(&results, &dir).expect("charts");
    assert_eq!(charts.len(), 3);

    let json: SweepResults = serde_json::from_str(&read(&dir, "results.json")).expect("json");
    assert_eq!(json.schema, SWEEP_SCHEMA);
    assert_eq!(json.rows.len(), 6);
    let csv = read(&dir, "results.csv");
    assert_eq!(csv.lines().count(), 7, "header + 6 rows:\n{csv}");
    assert!(csv.contains("chat-blocking,10,failed,1,"), "{csv}");
    assert!(csv.contains("chat-nothing,50,skipped"), "{csv}");
    assert!(csv.starts_with("model,conns,status,"), "{csv}");
    assert!(
        csv.lines().next().unwrap_or("").contains("send_lag_p99_us"),
        "{csv}"
    );
    let md = read(&dir, "results.md");
    assert!(
        md.contains("| chat-epoll (edge) | 50 | ok |")
            || md.contains("| chat-epoll (edge) | 50 | behind |"),
        "{md}"
    );
    assert!(
        md.contains("send lag p99 µs") && md.contains("loadgen µs/msg"),
        "{md}"
    );
    assert!(md.contains("| chat-blocking | 10 | failed |"), "{md}");
    for chart in ["qps.svg", "p99.svg", "memory.svg"] {
        let svg = read(&dir, chart);
        assert!(svg.starts_with("<svg"), "{chart}");
        // Text is SVG <text>, no font library involved: titles and legends are in the file.
        assert!(svg.contains("<text"), "{chart} has no text");
        assert!(
            svg.contains("chat-epoll (edge)"),
            "{chart} lacks the legend"
        );
        assert!(svg.contains("chat-blocking (failed from 10)"), "{chart}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The command line: `loadgen sweep` with one model and one level writes the files into
/// `--out`, prints the Markdown table, and exits 0.
#[test]
fn sweep_command_line_writes_the_files() {
    let dir = temp_dir("sweep-cli");
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["sweep", "--servers", "epoll-level", "--conns", "8"])
        .args(["--duration", "500ms", "--warmup", "100ms", "--rate", "4"])
        .arg("--out")
        .arg(&dir)
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("| chat-epoll (level) | 8 | ok |")
            || stdout.contains("| chat-epoll (level) | 8 | behind |"),
        "{stdout}"
    );
    for file in [
        "results.json",
        "results.csv",
        "results.md",
        "qps.svg",
        "p99.svg",
        "memory.svg",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
