//! `sealgate policy push|list|activate`: the policy API from a shell or a CI job, so a
//! team keeps its Rego in a repository and ships it like code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use sealgate_policy::{Bundle, MAX_FILE_BYTES};
use sealgate_server::extract::MAX_BODY_BYTES;

use crate::client::{address, admin_token, Connection};

/// Where the server is and how to act as admin there.
#[derive(Args)]
pub(crate) struct Target {
    /// The server: http://host:port, or https://host[:port] through a TLS proxy.
    #[arg(long, env = "SEALGATE_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Admin token file, used when SEALGATE_TOKEN is not set [default: ./sealgate-data/admin-token].
    #[arg(long)]
    token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum PolicyCommand {
    /// Upload a bundle: .rego files, and directories whose .rego files (searched
    /// recursively) are named by their path inside the directory. Prints
    /// {"version","created"} and, with --activate, the activation.
    Push {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// A JSON object the policy reads as `data`.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Make the bundle the active policy (a ledger entry) once uploaded.
        #[arg(long)]
        activate: bool,
        #[command(flatten)]
        target: Target,
    },
    /// List uploaded bundles, newest first, and which one is active.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Make an uploaded bundle the active policy (a ledger entry); an older version
    /// rolls back.
    Activate {
        version: String,
        #[command(flatten)]
        target: Target,
    },
}

pub(crate) async fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Push {
            paths,
            data,
            activate,
            target,
        } => {
            // Everything local is read and checked before the server is asked anything:
            // the bundle rules (names, sizes, counts) are the server's own.
            let files = read_bundle(&paths)?;
            let data = data.as_deref().map(read_data).transpose()?;
            Bundle::new(files.clone(), data.clone()).context("the bundle would be refused")?;
            let mut body = json!({ "files": files });
            if let Some(data) = data {
                body["data"] = data;
            }
            let size = serde_json::to_vec(&body)?.len();
            if size > MAX_BODY_BYTES {
                bail!(
                    "the bundle makes a {size}-byte request; the server takes at most {MAX_BODY_BYTES}"
                );
            }
            let mut server = Server::open(&target).await?;
            let uploaded = match server
                .call(Method::POST, "/v1/policies", Some(&body))
                .await?
            {
                Ok(v) => v,
                Err(code) => return Ok(code),
            };
            if !activate {
                crate::out(uploaded)?;
                return Ok(ExitCode::SUCCESS);
            }
            let version = uploaded["version"]
                .as_str()
                .context("the server's answer names no version")?;
            let path = format!("/v1/policies/{version}/activate");
            let activation = match server.call(Method::POST, &path, None).await {
                Ok(Ok(v)) => v,
                Ok(Err(code)) => {
                    eprintln!("the bundle was uploaded as {version} but not activated");
                    return Ok(code);
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "the bundle was uploaded as {version} but not activated"
                    )))
                }
            };
            let mut out = uploaded;
            out["activation"] = activation;
            crate::out(out)?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::List { target } => {
            let mut server = Server::open(&target).await?;
            match server.call(Method::GET, "/v1/policies", None).await? {
                Ok(v) => crate::out(v)?,
                Err(code) => return Ok(code),
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Activate { version, target } => {
            // A version is the bundle's SHA-256; anything else would change the path.
            if version.len() != 64 || !version.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("{version:?} is not a policy version (64 hex digits, as `policy push` and `policy list` print)");
            }
            let mut server = Server::open(&target).await?;
            let path = format!("/v1/policies/{}/activate", version.to_ascii_lowercase());
            match server.call(Method::POST, &path, None).await? {
                Ok(v) => crate::out(v)?,
                Err(code) => return Ok(code),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A connection to the server with the admin token.
struct Server {
    conn: Connection,
    token: String,
}

impl Server {
    async fn open(target: &Target) -> anyhow::Result<Server> {
        let token = admin_token(target.token_file.as_deref())?;
        let conn = Connection::open(&address(&target.server)?).await?;
        Ok(Server { conn, token })
    }

    /// The answer's JSON, or, when the server refused, the exit code (1) after saying why.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Result<Value, ExitCode>> {
        let body = body.map(serde_json::to_vec).transpose()?.map(Into::into);
        let (status, answer) = self
            .conn
            .send(method, path, Some(&self.token), body)
            .await?;
        if !(200..300).contains(&status) {
            eprintln!(
                "error: server answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
            return Ok(Err(ExitCode::from(1)));
        }
        serde_json::from_slice(&answer)
            .map(Ok)
            .with_context(|| format!("the server's answer to {path} is not JSON"))
    }
}

/// The bundle's files by name: a file by its own name, a directory's .rego files by
/// their path inside it, with `/` between parts.
fn read_bundle(paths: &[PathBuf]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for path in paths {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        let found = if meta.is_dir() {
            let mut found = Vec::new();
            rego_files(path, path, &mut found)?;
            if found.is_empty() {
                bail!("{} holds no .rego file", path.display());
            }
            found
        } else {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{}: the file name is not UTF-8", path.display()))?;
            vec![(name.to_owned(), path.clone())]
        };
        for (name, file) in found {
            // Sized before it is read: the server takes no larger file anyway.
            let size = std::fs::metadata(&file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .len();
            if size > MAX_FILE_BYTES as u64 {
                bail!(
                    "{} is {size} bytes: a policy file holds at most {MAX_FILE_BYTES}",
                    file.display()
                );
            }
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {} as UTF-8 text", file.display()))?;
            if files.insert(name.clone(), source).is_some() {
                bail!("two files would both be named {name:?} in the bundle");
            }
        }
    }
    Ok(files)
}

/// Every `.rego` file under `dir`, named by its path relative to `root`.
fn rego_files(root: &Path, dir: &Path, found: &mut Vec<(String, PathBuf)>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot read {}", path.display()))?;
        if kind.is_symlink() && path.is_dir() {
            // Not followed: a link can loop, or reach outside what was named.
            bail!(
                "{} is a symbolic link to a directory, which is not followed: name that directory itself",
                path.display()
            );
        }
        if kind.is_dir() {
            rego_files(root, &path, found)?;
        } else if path.extension().is_some_and(|e| e == "rego") {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let parts: Option<Vec<&str>> = relative.iter().map(|p| p.to_str()).collect();
            let name = parts
                .with_context(|| format!("{}: the path is not UTF-8", path.display()))?
                .join("/");
            found.push((name, path));
        }
    }
    Ok(())
}

fn read_data(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let data: Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if !data.is_object() {
        bail!("{}: policy data must be a JSON object", path.display());
    }
    Ok(data)
}
