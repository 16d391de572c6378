//! End to end: `bench scenario throughput` and `bench scenario durability`
//! at a tiny size against the real kv-server (the debug build CI makes
//! before the tests) and redis-server.
//!
//! - `KV_SERVER_BIN`: the server binary. Default:
//!   `$CARGO_TARGET_DIR/debug/kv-server`, else `<workspace>/target/debug/kv-server`.
//! - `CI=true`: a missing redis-server or kv-server fails the test instead of
//!   skipping it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

fn kv_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KV_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    };
    target.join("debug").join("kv-server")
}

fn redis_installed() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join("redis-server").is_file())
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("bench-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The kv-server binary, or `None` (skip) when a needed binary is missing;
/// under CI that fails instead.
fn prerequisites() -> Option<PathBuf> {
    let kv = kv_server_bin();
    let missing = if !redis_installed() {
        Some("redis-server is not installed (apt-get install redis-server)".to_string())
    } else if !kv.is_file() {
        Some(format!(
            "{} is missing (cargo build -p server)",
            kv.display()
        ))
    } else {
        None
    };
    match missing {
        Some(why) if ci() => panic!("{why}"),
        Some(why) => {
            eprintln!("skipping the scenario test: {why}");
            None
        }
        None => Some(kv),
    }
}

/// A scenario removes its scratch directory from the output directory.
fn assert_no_scratch_left(out: &std::path::Path) {
    let leftovers: Vec<_> = std::fs::read_dir(out)
        .expect("out dir")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with(".scratch"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "scratch dir left behind: {leftovers:?}"
    );
}
#[test]
fn tiny_throughput_scenario_compares_both_servers() {
    let Some(kv) = prerequisites() else {
        return;
    };
    let out = TempDir::new("scenario-throughput");
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "scenario",
            "throughput",
            "--runs",
            "1",
            "--requests",
            "2000",
        ])
        .arg("--server-bin")
        .arg(&kv)
        .arg("--out")
        .arg(&out.0)
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench failed:\n{stdout}\n{stderr}");
    for row in ["SET P1 ", "SET P16", "GET P1 ", "GET P16"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(row) && l.contains("req/s")),
            "no run line for {row}:\n{stdout}"
        );
    }

    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.0.join("throughput.json")).expect("throughput.json"),
    )
    .expect("valid JSON");
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4);
    for r in rows {
        for field in ["redis_median", "ours_median", "ratio"] {
            let v = r[field].as_f64().unwrap_or(0.0);
            assert!(v > 0.0, "{field} of {r} is not positive");
        }
    }
    let figures = json["figures"].as_array().expect("figures");
    assert_eq!(figures.len(), 8, "4 rows x 1 run x 2 servers");
    let servers: Vec<&str> = figures
        .iter()
        .filter_map(|f| f["server"].as_str())
        .collect();
    assert_eq!(
        servers,
        ["redis", "kv-server"].repeat(4),
        "runs alternate, redis first"
    );
    for f in figures {
        assert_eq!(f["requests"].as_u64(), Some(2000), "{f}");
        assert_eq!(f["errors"].as_u64(), Some(0), "{f}");
    }
    let svg = std::fs::read_to_string(out.0.join("throughput.svg")).expect("throughput.svg");
    assert!(svg.starts_with("<svg") && svg.contains("SET pipeline 16"));
    assert_no_scratch_left(&out.0);
}

/// Processes whose command line mentions `dir` (servers started there).
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(&needle) {
            found.push(format!("{}: {text}", e.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn quick_durability_scenario_measures_both_servers() {
    let Some(kv) = prerequisites() else {
        return;
    };
    let out = TempDir::new("scenario-durability");
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["scenario", "durability", "--quick"])
        .arg("--server-bin")
        .arg(&kv)
        .arg("--out")
        .arg(&out.0)
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench failed:\n{stdout}\n{stderr}");
    assert!(
        !stdout.contains("not implemented"),
        "our side must be measured:\n{stdout}"
    );

    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.0.join("durability.json")).expect("durability.json"),
    )
    .expect("valid JSON");
    let figures = json["figures"].as_array().expect("figures");
    let of = |part: u64, config: &str| -> Vec<&serde_json::Value> {
        figures
            .iter()
            .filter(|f| f["part"].as_u64() == Some(part) && f["config"] == config)
            .collect()
    };
    for f in figures {
        assert_eq!(f["errors"].as_u64(), Some(0), "{f}");
        assert!(f["throughput"].as_f64().unwrap_or(0.0) > 0.0, "{f}");
    }
    // Part 1: every policy on both servers, ours with its log counters.
    let part1: Vec<&str> = figures
        .iter()
        .filter(|f| f["part"].as_u64() == Some(1))
        .filter_map(|f| f["config"].as_str())
        .collect();
    assert_eq!(
        part1,
        [
            "redis always",
            "kv-server always",
            "redis everysec",
            "kv-server no",
            "redis no"
        ],
        "one quick run per configuration, alternating"
    );
    for f in of(1, "kv-server always") {
        assert_eq!(f["requests"].as_u64(), Some(2000), "{f}");
        let aof = &f["aof"];
        assert!(aof["records"].as_u64() >= Some(2000), "{f}");
        assert!(aof["fsyncs"].as_u64() > Some(0), "{f}");
        assert!(aof["records_per_commit"].as_f64() >= Some(1.0), "{f}");
    }
    assert!(of(1, "redis always")[0]["aof"].is_null());
    // Part 2: GET and SET percentiles apart; the keys were filled; a
    // closed-loop run and a paced one per configuration.
    for config in [
        "redis always",
        "kv-server always",
        "redis off",
        "kv-server off",
    ] {
        let f = of(2, config);
        let rates: Vec<Option<f64>> = f.iter().map(|f| f["rate"].as_f64()).collect();
        assert_eq!(rates, [None, Some(5000.0)], "{config}");
        for f in f {
            assert!(f["get_p99_ms"].as_f64() > Some(0.0), "{f}");
            assert!(f["set_p99_ms"].as_f64() > Some(0.0), "{f}");
            assert_eq!(f["get_nulls"].as_u64(), Some(0), "{f}");
        }
    }
    assert!(of(2, "kv-server off")[0]["aof"].is_null());
    // Part 3: one run per client count; with one client a group commit
    // holds one record.
    let ours3 = of(3, "kv-server always");
    let clients: Vec<u64> = ours3.iter().filter_map(|f| f["clients"].as_u64()).collect();
    assert_eq!(clients, [1, 10, 100]);
    let one = ours3[0]["aof"]["records_per_commit"]
        .as_f64()
        .unwrap_or(0.0);
    assert!((0.99..=1.01).contains(&one), "{}", ours3[0]);
    // Part 4: both logs written, ours not through the page cache.
    let page = json["page_cache"].as_array().expect("page_cache");
    assert_eq!(page.len(), 2);
    for p in page {
        assert!(p["log_bytes"].as_u64() >= Some(8 << 20), "{p}");
        assert_eq!(p["errors"].as_u64(), Some(0), "{p}");
    }
    // Part 5: one rewrite per server (Redis first), ended well, under load.
    let rewrites = json["rewrites"].as_array().expect("rewrites");
    let servers: Vec<&str> = rewrites
        .iter()
        .filter_map(|r| r["server"].as_str())
        .collect();
    assert_eq!(servers, ["redis", "kv-server"]);
    for r in rewrites {
        let what = format!("{} run {}", r["config"], r["run"]);
        assert_eq!(r["last_bgrewrite_status"], "ok", "{what}");
        assert!(r["rewrite_secs"].as_f64() > Some(0.0), "{what}");
        assert!(r["throughput_during"].as_f64() > Some(0.0), "{what}");
        assert_eq!(r["error_replies"].as_u64(), Some(0), "{what}");
        let samples = r["samples"].as_array().map_or(0, Vec::len);
        assert!(samples >= 3, "{what}: {samples} samples");
    }
    let rows = json["rewrite_rows"].as_array().expect("rewrite_rows");
    assert!(
        rows.iter()
            .any(|r| r["metric"] == "rewrite duration" && r["ratio"].as_f64() > Some(0.0)),
        "{rows:?}"
    );
    assert_eq!(json["targets"].as_array().map(Vec::len), Some(7));
    for rows in ["write_rows", "mix_rows", "scaling_rows", "page_cache_rows"] {
        for r in json[rows].as_array().expect(rows) {
            assert!(r["throughput"].as_f64() > Some(0.0), "{rows}: {r}");
        }
    }
    let svg = std::fs::read_to_string(out.0.join("durability.svg")).expect("durability.svg");
    assert!(svg.starts_with("<svg") && svg.contains("records per group commit"));
    assert!(svg.contains("part 5: slowest probe PING"));
    assert_no_scratch_left(&out.0);
    let running = processes_under(&out.0);
    assert!(running.is_empty(), "servers left running: {running:?}");
}

#[test]
fn missing_redis_server_is_reported_clearly() {
    let out = TempDir::new("scenario-no-redis");
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["scenario", "throughput", "--runs", "1", "--requests", "10"])
        .arg("--out")
        .arg(&out.0)
        .env("PATH", &out.0)
        .env_remove("REDIS_SERVER_BIN")
        .output()
        .expect("run bench");
    assert!(!run.status.success(), "must fail without redis-server");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("redis-server is not installed: apt-get install redis-server"),
        "{stderr}"
    );
}
