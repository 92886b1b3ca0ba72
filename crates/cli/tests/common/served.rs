//! One `sealgate serve` process, shared by the test binaries that spawn the real binary
//! (e2e, replicas and pg_outage include it with `#[path]`). Each harness decides the
//! flags and what "ready" means; this owns the process: a free port, stderr into a log
//! file, the caller's own sealgate settings kept out, SIGKILL when dropped.

#![allow(dead_code, unreachable_pub)]

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_sealgate");

/// A port nobody listens on now. Another process may still take it before `serve`
/// binds it; callers that care retry on a fresh one.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// An HTTP client that keeps enough idle connections for a test's load.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(64)
        .build()
        .expect("http client")
}

/// A running (or exited) `sealgate serve`.
pub struct Served {
    child: Option<Child>,
    pub port: u16,
    pub base: String,
    /// Where its stderr goes.
    pub log_path: PathBuf,
}

impl Served {
    /// `sealgate serve --listen 127.0.0.1:PORT ARGS…` in `cwd`, logging at info into
    /// `log_path`. SEALGATE_TOKEN, SEALGATE_CONFIG, SEALGATE_DATABASE_URL and the rate
    /// limit's settings are removed from its environment, so a developer's settings
    /// cannot reach a test's server.
    pub fn spawn<I, S>(port: u16, cwd: &Path, log_path: PathBuf, args: I) -> Served
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env_remove("SEALGATE_TOKEN")
            .env_remove("SEALGATE_CONFIG")
            .env_remove("SEALGATE_DATABASE_URL")
            .env_remove("SEALGATE_REDIS_URL")
            .env_remove("SEALGATE_RATE_LIMIT_PER_KEY")
            .env_remove("SEALGATE_RATE_LIMIT_PER_IP")
            .env("SEALGATE_LOG", "info")
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn sealgate serve");
        Served {
            child: Some(child),
            port,
            base: format!("http://127.0.0.1:{port}"),
            log_path,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// How it ended, once it has; None while it runs (or after `kill`).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait"))
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// SIGKILL (std's `Child::kill`), then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}
