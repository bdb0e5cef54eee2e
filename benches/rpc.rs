//! RPC round trip from Rust: `daemon_info` against a running daemon, and the floor (a bare
//! Unix-socket echo of the same bytes, served by a thread of this process).
//!
//!   ARCHY_BENCH_SOCKET=/path/archy.sock ARCHY_BENCH_N=5000 cargo bench --bench rpc
//!
//! Prints one JSON object: medians and p99 in microseconds. `benches/bench.py` runs it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Instant;

const REQUEST: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon_info\",\"params\":{}}\n";

fn round_trips(path: &std::path::Path, n: usize, check: bool) -> Vec<f64> {
    let stream = UnixStream::connect(path).expect("connect");
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        line.clear();
        let t = Instant::now();
        w.write_all(REQUEST).unwrap();
        r.read_line(&mut line).unwrap();
        let dt = t.elapsed().as_secs_f64() * 1e6;
        if check {
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON reply");
            assert!(v.get("result").is_some(), "{line}");
        }
        if i >= n / 10 {
            out.push(dt); // the first 10% warm up
        }
    }
    out
}

fn stats(mut v: Vec<f64>) -> serde_json::Value {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    serde_json::json!({
        "n": v.len(),
        "median_us": v[v.len() / 2],
        "p99_us": v[v.len() * 99 / 100],
    })
}

fn main() {
    let Ok(socket) = std::env::var("ARCHY_BENCH_SOCKET") else {
        eprintln!(
            "rpc bench: set ARCHY_BENCH_SOCKET to a running archy-executor's socket; skipped"
        );
        return;
    };
    let n: usize = std::env::var("ARCHY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);

    let dir = std::env::temp_dir().join(format!("archy-rpc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let echo_path = dir.join("echo.sock");
    let listener = UnixListener::bind(&echo_path).unwrap();
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            w.write_all(&line).unwrap();
            line.clear();
        }
    });
    let floor = round_trips(&echo_path, n, false);
    let rpc = round_trips(std::path::Path::new(&socket), n, true);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        serde_json::json!({ "floor": stats(floor), "daemon_info": stats(rpc) })
    );
}
