//! Explains the injection screener's verdicts on a labelled JSONL file:
//! prints every false positive and false negative with its score and the ids
//! of the rules that fired, so a user can see why a row was (not) flagged.
//!
//! `cargo run --release -p sealgate-screen --example screen_explain -- FILE.jsonl [all]`

use std::io::BufRead;

use sealgate_screen::{ScreenConfig, Screener};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: screen_explain FILE.jsonl [all]")?;
    let all = args.next().as_deref() == Some("all");
    let screener = Screener::new(ScreenConfig::default())?;
    let file = std::io::BufReader::new(std::fs::File::open(&path)?);
    for (i, line) in file.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row: serde_json::Value = serde_json::from_str(&line)?;
        let text = row["text"].as_str().unwrap_or("");
        let label = row["label"].as_i64() == Some(1) || row["label"].as_bool() == Some(true);
        let v = screener.screen_text(text);
        if all || v.flagged != label {
            let kind = match (label, v.flagged) {
                (true, false) => "FN",
                (false, true) => "FP",
                (true, true) => "TP",
                (false, false) => "TN",
            };
            let snippet: String = text
                .chars()
                .take(160)
                .collect::<String>()
                .replace('\n', " ");
            println!(
                "{kind} line={} score={:.3} subset={} rules={:?}\n    {snippet}",
                i + 1,
                v.score,
                row["subset"].as_str().unwrap_or("-"),
                v.rules
            );
        }
    }
    Ok(())
}
