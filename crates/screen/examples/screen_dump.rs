//! Prints every detector decision on a large fixed corpus, one line per text,
//! so that two builds can be compared for identical behaviour with `diff`
//! (used to check that speed work changes nothing that is detected).
//!
//! `cargo run --release -p sealgate-screen --example screen_dump > dump.txt`
//!
//! Corpus: every `text` of the shared test data (prompt-injection dev set and
//! the secrets files) plus deterministic mutations of them (concatenations,
//! slices, case changes, invisible characters, full-width letters, leetspeak,
//! base64 / hex / percent encodings). Per text it prints the injection score
//! and rule ids, the secret spans, and a manifest report where the text is
//! both a value and a key.

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{json, Value};

use sealgate_screen::{ScreenConfig, Screener};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn floor(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(rng: &mut Lcg, a: &str, b: &str) -> String {
    match rng.below(10) {
        0 => format!("{a} {b}"),
        1 => {
            let s = floor(a, rng.below(a.len() + 1));
            let e = floor(a, s + rng.below(a.len() - s + 1));
            a[s..e].to_owned()
        }
        2 => a.to_uppercase(),
        3 => a
            .chars()
            .flat_map(|c| {
                if c == ' ' {
                    vec![' ']
                } else {
                    vec![c, '\u{200B}']
                }
            })
            .collect(),
        4 => a
            .chars()
            .map(|c| match c {
                'a'..='z' => char::from_u32(c as u32 - 'a' as u32 + 0xFF41).unwrap_or(c),
                _ => c,
            })
            .collect(),
        5 => a
            .chars()
            .map(|c| match c {
                'o' => '0',
                'e' => '3',
                'i' => '1',
                'a' => '4',
                's' => '$',
                _ => c,
            })
            .collect(),
        6 => format!(
            "{} {} {}",
            &b[..floor(b, 40)],
            base64::engine::general_purpose::STANDARD.encode(a),
            &b[floor(b, 40)..]
        ),
        7 => format!("x={} end", hex::encode(a)),
        8 => format!(
            "q={}",
            percent_encoding::utf8_percent_encode(a, percent_encoding::NON_ALPHANUMERIC)
        ),
        _ => format!(
            "{b}\n{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(base64::engine::general_purpose::STANDARD.encode(a))
        ),
    }
}

fn texts(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in [
        "screening/prompt_injection_dev.jsonl",
        "secrets/detect_secrets_plugin_tests.jsonl",
        "secrets/gitleaks_rule_samples.jsonl",
        "secrets/presidio_analyzer_recognizer_tests.jsonl",
    ] {
        let Ok(data) = std::fs::read_to_string(root.join(f)) else {
            eprintln!("skipped: {f}");
            continue;
        };
        for line in data.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                if let Some(t) = v.get("text").and_then(Value::as_str) {
                    out.push(t.to_owned());
                }
            }
        }
    }
    out
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    let screener = match Screener::new(ScreenConfig::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let base = texts(&root);
    let mut rng = Lcg(0x5ea1_6a7e);
    let mut all = base.clone();
    for _ in 0..base.len() * 3 {
        let a = &base[rng.below(base.len())];
        let b = &base[rng.below(base.len())];
        all.push(mutate(&mut rng, a, b));
    }
    for (i, t) in all.iter().enumerate() {
        let v = screener.screen_text(t);
        let mut rules = v.rules.clone();
        rules.sort_unstable();
        let spans: Vec<String> = screener
            .find_secrets(t)
            .iter()
            .map(|m| format!("{}:{}-{}", m.kind, m.start, m.end))
            .collect();
        let key: String = t.chars().take(200).collect();
        let params = json!({"v": t, "n": [t, 1], key.clone(): "x"});
        let report = screener.screen_manifest(&key, &params);
        println!(
            "{i} {} {} [{}] [{}] {}",
            v.flagged,
            v.score,
            rules.join(","),
            spans.join(","),
            serde_json::to_string(&report).unwrap_or_default()
        );
    }
}
