//! Runs both screening reports on the shared test data and prints them as JSON.
//!
//! `cargo run --release -p sealgate-screen --example screen_eval -- [INJECTION.jsonl] [SECRETS_DIR]`
//! Defaults: `../shared/testdata/screening/prompt_injection_dev.jsonl` and
//! `../shared/testdata/secrets` relative to the workspace root.

use std::io::BufReader;
use std::path::PathBuf;

use sealgate_screen::{eval, ScreenConfig, Screener};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    let mut args = std::env::args().skip(1);
    let injection = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("screening/prompt_injection_dev.jsonl"));
    let secrets = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("secrets"));
    let screener = Screener::new(ScreenConfig::default())?;

    match std::fs::File::open(&injection) {
        Ok(file) => {
            let report = eval::injection_report(BufReader::new(file), &screener)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Err(e) => eprintln!("skipped: {} not present ({e})", injection.display()),
    }
    if secrets.is_dir() {
        let report = eval::secrets_report(&secrets, &screener);
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprintln!("skipped: {} not present", secrets.display());
    }
    Ok(())
}
