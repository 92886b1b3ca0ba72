//! `sealgate migrate`: applies the PostgreSQL schema's pending migrations (versioned,
//! forward-only) and exits. `serve` applies them too, under the same advisory lock, so
//! running this first is optional; it lets the schema owner migrate while the replicas
//! run as a role that may not change the schema.

use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub(crate) struct MigrateArgs {
    /// PostgreSQL URL (postgres://…) of the schema owner.
    #[arg(long, env = "SEALGATE_DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

pub(crate) async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let applied = sealgate_store_postgres::migrate(&args.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("migrating: {e}"))?;
    crate::out(serde_json::json!({
        "applied": applied,
        "schema_version": sealgate_store_postgres::SCHEMA_VERSION,
    }))?;
    Ok(ExitCode::SUCCESS)
}
