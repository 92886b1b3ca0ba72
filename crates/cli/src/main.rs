//! `sealgate`: thin `main` — parse arguments, run one command, map failure to an exit code.
//! Exit codes: 0 success, 1 the command ran and found a problem, 2 usage or setup error.

mod bench;
mod client;
mod keys;
mod migrate;
mod policy;
mod screen;
mod serve;
mod verify;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

// The decision path allocates many small, short-lived values (JSON trees, Rego values,
// strings); glibc malloc spent ~15 % of a decision's instructions on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sealgate",
    version,
    about = "The action gateway for AI agents: decide, seal, record, prove."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// Manage API keys through a running server.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Upload, list and activate policy bundles through a running server.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Check a ledger offline: exit 0 when intact, 1 when tampering is found, 2 for usage errors.
    Verify(verify::VerifyArgs),
    /// Ledger maintenance.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Measure the prompt-injection and secret screeners on labelled data.
    Screen {
        #[command(subcommand)]
        command: screen::ScreenCommand,
    },
    /// Drive concurrent load against a running server and report decisions/s and latency.
    Bench(bench::BenchArgs),
    /// Apply pending PostgreSQL migrations (versioned, forward-only) and exit.
    Migrate(migrate::MigrateArgs),
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Write the ledger (entries, leaf hashes, checkpoints) as JSON lines for offline verification.
    Export(verify::ExportArgs),
}

/// Writes `text` and a newline to standard output: an error (exit 2), not a panic as
/// with `println!`, when it is closed (`sealgate verify | head -0`) or full.
pub(crate) fn out(text: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .context("writing to standard output")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Keys { command } => keys::run(command).await,
            Command::Policy { command } => policy::run(command).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Screen { command } => screen::run(command),
            Command::Ledger {
                command: LedgerCommand::Export(args),
            } => verify::export(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
