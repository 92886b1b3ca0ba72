//! `sealgate keys create|revoke`: calls the server's key API with an admin token.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use hyper::Method;

use crate::client::{address, admin_token, Connection};

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Create an API key; prints {"id","role","name","token"} (the token is shown only now).
    Create {
        /// agent, executor, auditor, approver or admin.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: Option<String>,
        /// The server: http://host:port, or https://host[:port] through a TLS proxy.
        #[arg(long, env = "SEALGATE_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Admin token file, used when SEALGATE_TOKEN is not set [default: ./sealgate-data/admin-token].
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Revoke an API key by id.
    Revoke {
        id: String,
        /// The server: http://host:port, or https://host[:port] through a TLS proxy.
        #[arg(long, env = "SEALGATE_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
}

pub(crate) async fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Create {
            role,
            name,
            server,
            token_file,
        } => {
            let token = admin_token(token_file.as_deref())?;
            let mut conn = Connection::open(&address(&server)?).await?;
            let body = serde_json::json!({"role": role, "name": name});
            let (status, body) = conn
                .send(
                    Method::POST,
                    "/v1/keys",
                    Some(&token),
                    Some(serde_json::to_vec(&body)?.into()),
                )
                .await?;
            if status != 201 {
                return Ok(refused(status, &body));
            }
            // Shown only now: a token that cannot be written is lost, and its key is
            // live. Say which key to revoke.
            crate::out(String::from_utf8_lossy(&body)).with_context(|| {
                let id = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "(unknown id)".into());
                format!("key {id} was created but its token could not be written: revoke it")
            })?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke {
            id,
            server,
            token_file,
        } => {
            // Key ids are `key_` and hex; anything else would change the request's path.
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                bail!("{id:?} is not a key id (key_ and hex digits, as `keys create` prints)");
            }
            let token = admin_token(token_file.as_deref())?;
            let mut conn = Connection::open(&address(&server)?).await?;
            let (status, body) = conn
                .send(
                    Method::DELETE,
                    &format!("/v1/keys/{id}"),
                    Some(&token),
                    None,
                )
                .await?;
            if status != 204 {
                return Ok(refused(status, &body));
            }
            crate::out(format!("revoked {id}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The server answered but refused: the request failed (exit 1), unlike a setup
/// problem such as an unreachable server or a missing token file (exit 2).
fn refused(status: u16, body: &[u8]) -> ExitCode {
    eprintln!(
        "error: server answered {status}: {}",
        String::from_utf8_lossy(body)
    );
    ExitCode::from(1)
}
