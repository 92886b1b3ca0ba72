//! `sealgate screen eval|secrets-eval`: measure the screeners on labelled data.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use sealgate_screen::{eval, ScreenConfig, Screener};

#[derive(Subcommand)]
pub(crate) enum ScreenCommand {
    /// Precision, recall, F1 and false-positive rate of prompt-injection screening on a
    /// JSONL file of {"text", "label" (1 = attack), "subset"?} lines, overall and per subset.
    Eval { file: PathBuf },
    /// Per-detector precision and recall of the secret and PII detectors on a folder
    /// holding the detect-secrets, gitleaks and Presidio JSONL files.
    SecretsEval { dir: PathBuf },
}

pub(crate) fn run(cmd: ScreenCommand) -> anyhow::Result<ExitCode> {
    let screener = Screener::new(ScreenConfig::default()).context("compiling the screeners")?;
    let report = match cmd {
        ScreenCommand::Eval { file } => {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            eval::injection_report(BufReader::new(f), &screener)
                .with_context(|| format!("reading {}", file.display()))?
        }
        ScreenCommand::SecretsEval { dir } => {
            if !dir.is_dir() {
                anyhow::bail!("{} is not a directory", dir.display());
            }
            let report = eval::secrets_report(&dir, &screener);
            if report["sources"].as_object().is_none_or(|s| s.is_empty()) {
                anyhow::bail!(
                    "no detector test data read from {}: {}",
                    dir.display(),
                    report["errors"]
                );
            }
            report
        }
    };
    crate::out(serde_json::to_string_pretty(&report)?)?;
    Ok(ExitCode::SUCCESS)
}
