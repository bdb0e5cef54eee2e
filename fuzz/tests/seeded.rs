//! Stable-Rust fuzzing of the transport: a seeded generator of structured and hostile
//! inputs (FUZZ_CASES of them, default 20,000; FUZZ_SEED picks the sequence), each sent on a
//! fresh connection to the real `archy::transport::serve`. Besides the invariants of
//! `Harness::check`, every request carrying a generated string id must be answered exactly
//! once, and nothing else may be answered twice.

use std::collections::HashMap;

use archy_fuzz::{Harness, MAX_LINE};
use serde_json::Value;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const METHODS: &[&str] = &[
    "echo",
    "typed",
    "fail",
    "sub",
    "unsub",
    "nope",
    "",
    "rpc.x",
    "ECHO",
    "echo\\u0000",
];
const PARAMS: &[&str] = &[
    "{}",
    "[]",
    "null",
    "{\"a\":1}",
    "{\"a\":-1}",
    "{\"a\":\"x\"}",
    "{\"a\":1,\"b\":2}",
    "{\"a\":1,\"b\":\"s\"}",
    "[1,2,3]",
    "1",
    "\"s\"",
    "true",
    "{\"a\":4294967296}",
    "{\"a\":1.5}",
    "[0]",
    "{\"b\":\"no a\"}",
    "{\"a\":1,\"a\":2}",
    "{\"\\ud800\":1}",
];
const BAD_IDS: &[&str] = &[
    "null",
    "-1",
    "1.5",
    "1e400",
    "18446744073709551616",
    "{}",
    "[]",
    "true",
    "\"\"",
    "0",
];
const JUNK: &[&str] = &[
    "",
    " ",
    "{",
    "}",
    "[",
    "]",
    "[]",
    "[[]]",
    "[1]",
    "{\"jsonrpc\":\"2.0\"}",
    "nul",
    "\u{0}",
    "\"\\u",
    "1e99999",
    "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"echo\"}",
    "{\"jsonrpc\":2.0,\"id\":1,\"method\":\"echo\"}",
    "{\"id\":1,\"method\":\"echo\"}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":5}",
    "\u{feff}{}",
    "\r",
    "\t\t",
];

/// One line (no newline) and, if it is a request that must be answered, its id.
fn request(r: &mut Rng, n: usize, ids: &mut Vec<String>) -> String {
    let method = r.pick(METHODS);
    let params = r.pick(PARAMS);
    match r.below(10) {
        // A request with a unique string id: must be answered exactly once.
        0..=5 => {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let id = format!(
                "g{n}-{}",
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            ids.push(id.clone());
            let params = if r.below(4) == 0 {
                String::new()
            } else {
                format!(",\"params\":{params}")
            };
            format!("{{\"jsonrpc\":\"2.0\",\"method\":\"{method}\"{params},\"id\":\"{id}\"}}")
        }
        // A notification: never answered (checked by the id bookkeeping: it has none).
        6 => format!("{{\"jsonrpc\":\"2.0\",\"method\":\"{method}\",\"params\":{params}}}"),
        // An odd id: answered (or refused) with it or null.
        7 => format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"{method}\",\"params\":{params},\"id\":{}}}",
            r.pick(BAD_IDS)
        ),
        _ => r.pick(JUNK).to_string(),
    }
}

fn line(r: &mut Rng, n: usize, ids: &mut Vec<String>) -> Vec<u8> {
    match r.below(12) {
        0 => {
            // A batch of 0..6 elements.
            let k = r.below(7);
            // Elements are JSON values (junk ones too), so the batch itself parses.
            let items: Vec<String> = (0..k)
                .map(|_| {
                    loop {
                        let mut tried = Vec::new();
                        let item = request(r, n, &mut tried);
                        if serde_json::from_str::<Value>(&item).is_ok() {
                            ids.extend(tried);
                            break item;
                        }
                    }
                })
                .collect();
            format!("[{}]", items.join(",")).into_bytes()
        }
        1 => {
            // Random bytes.
            let len = r.below(64) as usize;
            (0..len)
                .map(|_| r.next() as u8)
                .filter(|&b| b != b'\n')
                .collect()
        }
        2 => {
            // Deep nesting.
            let d = r.below(400) as usize;
            let mut s = "[".repeat(d);
            s.push_str(&"]".repeat(r.below(d as u64 + 1) as usize));
            s.into_bytes()
        }
        3 => {
            // A valid request with one byte flipped.
            // Its id is renamed `z…` so a flipped digit cannot collide with a tracked `g…` id.
            let mut b = request(r, n, &mut Vec::new())
                .replace("\"g", "\"z")
                .into_bytes();
            if !b.is_empty() {
                let i = r.below(b.len() as u64) as usize;
                b[i] ^= 1 << r.below(8);
                if b[i] == b'\n' {
                    b[i] = b' ';
                }
            }
            b
        }
        _ => request(r, n, ids).into_bytes(),
    }
}

#[test]
fn seeded_fuzz_of_transport() {
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_a4c4);
    let corpus = std::env::var_os("FUZZ_WRITE_CORPUS");
    let h = Harness::get();
    let mut r = Rng(seed | 1);
    let (mut lines_sent, mut replies, mut too_long) = (0u64, 0u64, 0u64);
    for n in 0..cases {
        let mut ids = Vec::new();
        let mut input = Vec::new();
        for _ in 0..1 + r.below(6) {
            input.extend(line(&mut r, n, &mut ids));
            // CRLF line ends are tolerated (the `\r` is trimmed as whitespace).
            if r.below(50) == 0 {
                input.push(b'\r');
            }
            input.push(b'\n');
            lines_sent += 1;
        }
        let mut over_long = false;
        match r.below(40) {
            0 => {
                // Over the line cap: a -32600 line, then the connection closes.
                input.extend(std::iter::repeat_n(
                    b'x',
                    MAX_LINE + 1 + r.below(1000) as usize,
                ));
                input.push(b'\n');
                input.extend(b"{\"jsonrpc\":\"2.0\",\"id\":\"after-close\",\"method\":\"echo\"}\n");
                over_long = true;
                too_long += 1;
            }
            1 => {
                // A half line, then the peer stops writing.
                input.extend(b"{\"jsonrpc\":\"2.0\",\"id\":\"half\",\"meth");
            }
            _ => {}
        }
        if let Some(dir) = &corpus {
            if n < 200 {
                std::fs::write(
                    std::path::Path::new(dir).join(format!("seed-{n:03}")),
                    &input,
                )
                .unwrap();
            }
        }
        let out = h.check(&input);
        let mut seen: HashMap<String, u32> = HashMap::new();
        let mut count = |v: &Value| {
            if let Some(id) = v.get("id").and_then(Value::as_str) {
                *seen.entry(id.to_owned()).or_default() += 1;
            }
        };
        for v in &out {
            replies += 1;
            match v {
                Value::Array(items) => items.iter().for_each(&mut count),
                _ => count(v),
            }
        }
        for id in &ids {
            assert_eq!(
                seen.get(id).copied(),
                Some(1),
                "id {id} answered {:?} times; input {:?}",
                seen.get(id),
                String::from_utf8_lossy(&input)
            );
        }
        for (id, k) in &seen {
            assert!(
                *k == 1 || !id.starts_with('g'),
                "id {id} answered {k} times"
            );
        }
        assert!(
            !seen.contains_key("after-close"),
            "served a line after closing for an over-long one"
        );
        assert!(!seen.contains_key("half"), "answered a half line");
        if over_long {
            assert!(
                out.iter().any(|v| v["error"]["code"] == -32600),
                "no -32600 for an over-long line"
            );
        }
        if n % 500 == 0 {
            h.still_serving();
        }
    }
    h.still_serving();
    println!(
        "fuzz: {cases} inputs, {lines_sent} lines, {too_long} over-long, {replies} reply lines, 0 invariant failures (seed {seed:#x})"
    );
}
