//! `sealgate serve`: settings from defaults, `--config`, `SEALGATE_*` and flags; JSON logs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use sealgate_server::{AppState, Overrides, Settings, SystemClock};
use tracing::info;

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SEALGATE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the embedded store, keys and the admin token [default: ./sealgate-data].
    #[arg(long, env = "SEALGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://…); without it the embedded SQLite store is used.
    #[arg(long, env = "SEALGATE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// TOML settings file; environment and flags override it.
    #[arg(long, env = "SEALGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Name of this log (seal issuer, checkpoint origin).
    #[arg(long, env = "SEALGATE_ORIGIN")]
    origin: Option<String>,
    /// Seconds an issued seal stays redeemable [default: 300].
    #[arg(long, env = "SEALGATE_SEAL_TTL_SECS")]
    seal_ttl_secs: Option<u64>,
    /// Seconds a pending_approval decision waits for a person before it can no longer
    /// be approved [default: 86400].
    #[arg(long, env = "SEALGATE_APPROVAL_TTL_SECS")]
    approval_ttl_secs: Option<u64>,
    /// Most ledger entries per commit [default: 512].
    #[arg(long, env = "SEALGATE_MAX_BATCH")]
    max_batch: Option<usize>,
    /// Milliseconds between signed checkpoints while entries arrive [default: 1000].
    #[arg(long, env = "SEALGATE_CHECKPOINT_INTERVAL_MS")]
    checkpoint_interval_ms: Option<u64>,
    /// Requests per second one API key may make (429 beyond it, burst one second's
    /// worth unless the config file says) [default: no limit].
    #[arg(long, env = "SEALGATE_RATE_LIMIT_PER_KEY")]
    rate_limit_per_key: Option<u32>,
    /// Requests per second one client address (IPv6: one /64) may make, before
    /// authentication [default: no limit].
    #[arg(long, env = "SEALGATE_RATE_LIMIT_PER_IP")]
    rate_limit_per_ip: Option<u32>,
    /// Redis URL (redis://…) holding the rate-limit buckets, shared by replicas;
    /// without it each process keeps its own.
    #[arg(long, env = "SEALGATE_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let settings = Settings::load(
        args.config.as_deref(),
        Overrides {
            listen: args.listen,
            data_dir: args.data_dir,
            database_url: args.database_url,
            origin: args.origin,
            seal_ttl_secs: args.seal_ttl_secs,
            approval_ttl_secs: args.approval_ttl_secs,
            max_batch: args.max_batch,
            checkpoint_interval_ms: args.checkpoint_interval_ms,
            rate_limit_per_key: args.rate_limit_per_key,
            rate_limit_per_ip: args.rate_limit_per_ip,
            redis_url: args.redis_url,
        },
    )?;
    let listen = settings.listen;
    let data_dir = settings.data_dir.clone();
    // Bind first: a taken port then fails before anything is created in the data
    // directory (keys, admin token, a first ledger entry). Connections that arrive while
    // the state opens wait in the backlog.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let state = AppState::open(settings, Arc::new(SystemClock)).await?;
    info!(listen = %listener.local_addr()?, data_dir = %data_dir.display(), "sealgate serving");
    sealgate_server::serve(listener, state, shutdown_signal())
        .await
        .context("serving")?;
    info!("sealgate stopped");
    Ok(ExitCode::SUCCESS)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    info!("shutdown requested; draining requests");
}
