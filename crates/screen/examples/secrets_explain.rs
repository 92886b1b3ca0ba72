//! Lists the secret/PII detectors' misses and false positives on the shared
//! public test files, row by row, with what fired, so that each can be
//! looked at (the counterpart of `screen_explain` for injection).
//!
//! `cargo run --release -p sealgate-screen --example secrets_explain -- [SECRETS_DIR] [TYPE]`
//!
//! Scoring is that of `eval::secrets_report`: detect-secrets and gitleaks
//! rows by row (did a mapped type fire?), Presidio rows by span (overlap,
//! offsets in code points; rows that give only a count take that many
//! predictions). `TYPE` (e.g. `password`) keeps one of our types.

use std::path::PathBuf;

use serde_json::Value;

use sealgate_screen::eval::{DETECT_SECRETS_MAP, GITLEAKS_MAP, PRESIDIO_MAP, SPAN_FILTERS};
use sealgate_screen::{ScreenConfig, Screener, SecretKind};

fn rows(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn gitleaks_kinds(rule: &str) -> Option<&'static [SecretKind]> {
    GITLEAKS_MAP.iter().find_map(|(pat, kinds)| {
        let hit = match pat.strip_suffix('*') {
            Some(prefix) => rule.starts_with(prefix),
            None => rule == *pat,
        };
        hit.then_some(*kinds)
    })
}

fn snippet(text: &str) -> String {
    let s: String = text.chars().take(220).collect();
    s.replace('\n', "⏎")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/secrets")
    });
    let only = args.next();
    let keep = |k: SecretKind| only.as_deref().is_none_or(|o| o == k.as_str());
    let screener = Screener::new(ScreenConfig::default())?;

    for (file, field) in [
        ("detect_secrets_plugin_tests.jsonl", "detector"),
        ("gitleaks_rule_samples.jsonl", "rule_id"),
    ] {
        for row in rows(&dir.join(file)) {
            let name = row[field].as_str().unwrap_or("");
            let kinds = if field == "detector" {
                DETECT_SECRETS_MAP
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, k)| *k)
            } else {
                gitleaks_kinds(name)
            };
            let Some(kinds) = kinds else { continue };
            if !kinds.iter().any(|k| keep(*k)) {
                continue;
            }
            let text = row["text"].as_str().unwrap_or("");
            let label = row["label"].as_bool().unwrap_or(false);
            let found: Vec<String> = screener
                .find_secrets(text)
                .iter()
                .map(|m| format!("{}={:?}", m.kind, &text[m.start..m.end]))
                .collect();
            let filter = SPAN_FILTERS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, f)| *f);
            let hit = screener.find_secrets(text).iter().any(|m| {
                kinds.contains(&m.kind) && filter.is_none_or(|f| f(&text[m.start..m.end]))
            });
            if hit != label {
                let what = if label { "FN" } else { "FP" };
                println!(
                    "{what} {file}:{name} found=[{}]\n    {}",
                    found.join(", "),
                    snippet(text)
                );
            }
        }
    }
    for row in rows(&dir.join("presidio_analyzer_recognizer_tests.jsonl")) {
        let types: Vec<&str> = row["entity_types"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(kind) = types
            .first()
            .and_then(|t| PRESIDIO_MAP.iter().find(|(n, _)| n == t).map(|(_, k)| *k))
        else {
            continue;
        };
        if !keep(kind) {
            continue;
        }
        let text = row["text"].as_str().unwrap_or("");
        let expected: Vec<(usize, usize)> = row["expected_spans"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| Some((s[0].as_u64()? as usize, s[1].as_u64()? as usize)))
                    .collect()
            })
            .unwrap_or_default();
        let predicted: Vec<(usize, usize)> = screener
            .find_secrets(text)
            .into_iter()
            .filter(|m| m.kind == kind)
            .map(|m| {
                (
                    text[..m.start].chars().count(),
                    text[..m.end].chars().count(),
                )
            })
            .collect();
        let overlaps = |a: (usize, usize), b: (usize, usize)| a.0 < b.1 && b.0 < a.1;
        let span =
            |(s, e): (usize, usize)| -> String { text.chars().skip(s).take(e - s).collect() };
        for e in &expected {
            if !predicted.iter().any(|p| overlaps(*p, *e)) {
                println!(
                    "FN presidio:{kind} missed {:?} ({})\n    {}",
                    span(*e),
                    row["test"].as_str().unwrap_or(""),
                    snippet(text)
                );
            }
        }
        // Rows with a count but no spans take that many predictions.
        let mut unlisted = row["expected_count"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(expected.len() as u64);
        for p in &predicted {
            if !expected.iter().any(|e| overlaps(*p, *e)) {
                if unlisted > 0 {
                    unlisted -= 1;
                    continue;
                }
                println!(
                    "FP presidio:{kind} reported {:?} ({})\n    {}",
                    span(*p),
                    row["test"].as_str().unwrap_or(""),
                    snippet(text)
                );
            }
        }
    }
    Ok(())
}
