//! Scrubs stdin line by line, as the server scrubs log lines: every secret or
//! PII match becomes `[<type>]`. A line that is a JSON string literal is
//! decoded first (so multi-line samples can be piped one per line).
//!
//! `printf 'key AKIAZ7QWERTYUIOP1234\n' | cargo run -p sealgate-screen --example scrub`

use std::io::BufRead;

use sealgate_screen::{ScreenConfig, Screener};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let screener = Screener::new(ScreenConfig::default())?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let text = if line.starts_with('"') {
            serde_json::from_str::<String>(&line).unwrap_or(line)
        } else {
            line
        };
        println!("{}", serde_json::to_string(&screener.scrub(&text))?);
    }
    Ok(())
}
