//! The harness: the real `sealgate` binary on a free port with a fresh data directory,
//! an HTTP client, keys of each role and a few manifest builders.
//!
//! Every test spawns its own server, so tests share nothing and run in parallel. The
//! server is killed when its `Server` is dropped, also when a test panics.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::{json, Value};

pub use crate::served::BIN;
use crate::served::{free_port, Served};

/// How long a server may take from spawn to answering /healthz.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `sealgate serve`.
pub struct Server {
    process: Option<Served>,
    pub port: u16,
    pub base: String,
    /// Root of this server's scratch space: `data/` is the data dir, logs live beside it.
    root: tempfile::TempDir,
    pub data_dir: PathBuf,
    /// The stderr log of the current process.
    pub log_path: PathBuf,
    starts: u32,
    extra_args: Vec<String>,
    pub admin_token: String,
    pub http: reqwest::Client,
}

/// An API key as POST /v1/keys returns it.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub role: String,
    pub name: String,
    pub token: String,
}

/// A response, with its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts an RFC 9457 problem with this status.
    #[track_caller]
    pub fn expect_problem(self, status: u16) -> Resp {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert!(
            self.content_type.starts_with("application/problem+json"),
            "content type {:?} for a {status}; body: {}",
            self.content_type,
            self.text
        );
        assert_eq!(
            self.json["status"],
            json!(status),
            "problem body: {}",
            self.text
        );
        assert!(
            self.json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "problem without detail: {}",
            self.text
        );
        self
    }
}

pub fn client() -> reqwest::Client {
    crate::served::client(Duration::from_secs(20))
}

impl Server {
    /// A server on a fresh data directory.
    pub async fn start() -> Server {
        Server::start_with(&[]).await
    }

    /// A server on a fresh data directory with extra `serve` flags.
    pub async fn start_with(extra: &[&str]) -> Server {
        let root = tempfile::Builder::new()
            .prefix("sealgate-e2e-")
            .tempdir()
            .expect("tempdir");
        let data_dir = root.path().join("data");
        let mut server = Server {
            process: None,
            port: 0,
            base: String::new(),
            log_path: PathBuf::new(),
            data_dir,
            root,
            starts: 0,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            admin_token: String::new(),
            http: client(),
        };
        server.spawn().await;
        server.admin_token = std::fs::read_to_string(server.data_dir.join("admin-token"))
            .expect("admin-token written on first start")
            .trim()
            .to_owned();
        assert!(!server.admin_token.is_empty(), "empty admin token");
        server
    }

    /// Starts the binary on the data dir (retrying on another port if the one picked
    /// was taken meanwhile) and waits until /healthz answers.
    async fn spawn(&mut self) {
        for _attempt in 0..3 {
            self.starts += 1;
            self.port = free_port();
            self.base = format!("http://127.0.0.1:{}", self.port);
            self.log_path = self.root.path().join(format!("server-{}.log", self.starts));
            let mut args: Vec<OsString> = vec!["--data-dir".into(), self.data_dir.clone().into()];
            args.extend(self.extra_args.iter().map(Into::into));
            let process = Served::spawn(self.port, self.root.path(), self.log_path.clone(), args);
            let process = self.process.insert(process);
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if let Some(status) = process.exited() {
                    let log = self.log();
                    self.process = None;
                    if log.contains("binding") {
                        break; // port taken between probe and bind: try another
                    }
                    panic!("sealgate serve exited early ({status}); log:\n{log}");
                }
                if let Ok(r) = self
                    .http
                    .get(format!("{}/healthz", self.base))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                {
                    if r.status().is_success() {
                        return;
                    }
                }
                if Instant::now() > deadline {
                    panic!("sealgate did not become healthy; log:\n{}", self.log());
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        panic!("could not start sealgate on a free port");
    }

    /// The stderr log of the current process.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// All stderr logs of every process this server has run.
    pub fn all_logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.root.path().join(format!("server-{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("")
    }

    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("server running").pid()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(Served::is_running)
    }

    /// SIGTERM: asks the server to stop as an operator would.
    pub fn terminate(&self) {
        let term = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(term.success());
    }

    /// Waits up to 30 s for the process to exit; whether it did.
    pub async fn exited(&mut self) -> bool {
        let since = Instant::now();
        while self.is_running() && since.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        !self.is_running()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Kills the process (SIGKILL) and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; `body` is sent as application/json when given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(b).unwrap());
        }
        into_resp(req.send().await.expect("request sent")).await
    }

    /// POSTs raw bytes as application/json.
    pub async fn post_raw(&self, path: &str, token: Option<&str>, body: Vec<u8>) -> Resp {
        post_raw_with(&self.http, &self.url(path), token, body).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// Creates a key of `role` with the admin token; asserts the 201 shape.
    pub async fn create_key(&self, role: &str) -> Key {
        let name = format!("e2e {role}");
        let r = self
            .post(
                "/v1/keys",
                Some(&self.admin_token),
                &json!({"role": role, "name": name}),
            )
            .await
            .expect(201);
        let k = &r.json;
        assert_eq!(k["role"], json!(role), "{}", r.text);
        assert_eq!(k["name"], json!(name), "{}", r.text);
        Key {
            id: k["id"].as_str().expect("id").to_owned(),
            role: role.to_owned(),
            name: name.clone(),
            token: k["token"].as_str().expect("token").to_owned(),
        }
    }

    /// POST /v1/manifest/validate with `{"manifest": manifest}`.
    pub async fn validate(&self, agent: &Key, manifest: &Value) -> Resp {
        self.post(
            "/v1/manifest/validate",
            Some(&agent.token),
            &json!({ "manifest": manifest }),
        )
        .await
    }

    /// Validates `manifest`, asserting it is approved with a seal; returns the response body.
    pub async fn approved(&self, agent: &Key, manifest: &Value) -> Value {
        let r = self.validate(agent, manifest).await.expect(200);
        assert_eq!(r.json["approved"], json!(true), "{}", r.text);
        assert!(r.json["seal"].is_string(), "{}", r.text);
        r.json
    }

    /// The ledger's size, from GET /readyz.
    pub async fn tree_size(&self) -> u64 {
        let r = self.get("/readyz", None).await.expect(200);
        r.json["tree_size"].as_u64().expect("tree_size")
    }

    /// The first key of GET /.well-known/jwks.json.
    pub async fn jwk(&self) -> Value {
        let r = self.get("/.well-known/jwks.json", None).await.expect(200);
        let keys = r.json["keys"].as_array().expect("keys").clone();
        assert_eq!(keys.len(), 1, "one seal key expected: {}", r.text);
        keys[0].clone()
    }

    /// GET /v1/audit/query?{query} with `token`, asserting 200.
    pub async fn audit(&self, token: &str, query: &str) -> Value {
        let path = if query.is_empty() {
            "/v1/audit/query".to_owned()
        } else {
            format!("/v1/audit/query?{query}")
        };
        self.get(&path, Some(token)).await.expect(200).json
    }

    /// Redeems `seal` (a compact JWS) by its own `jti`.
    pub async fn redeem(&self, executor: &Key, seal_id: &str, seal: &str) -> Resp {
        self.post(
            &format!("/v1/seals/{seal_id}/redeem"),
            Some(&executor.token),
            &json!({ "seal": seal }),
        )
        .await
    }

    pub async fn verify(&self, executor: &Key, seal: &str) -> Value {
        self.post(
            "/v1/seals/verify",
            Some(&executor.token),
            &json!({ "seal": seal }),
        )
        .await
        .expect(200)
        .json
    }
}

/// POSTs raw bytes as application/json with `http`.
pub async fn post_raw_with(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Resp {
    let mut req = http
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    into_resp(req.send().await.expect("request sent")).await
}

pub async fn into_resp(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = r.text().await.expect("response body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        content_type,
        headers,
        text,
        json,
    }
}

/// A Relay-style manifest: `method` ("payment"/"refund") of `amount` cents via stripe.
pub fn manifest(agent_id: &str, method: &str, amount: i64) -> Value {
    json!({
        "agent_id": agent_id,
        "org_id": "org_relay",
        "user_id": "user_42",
        "provider": "stripe",
        "method": method,
        "parameters": {"amount": amount, "currency": "usd", "customer": "cus_123"},
        "reasoning": "customer asked for it in ticket 1234",
        "confidence_score": 0.93,
        "environment": "staging",
    })
}

/// Decodes one base64url segment of a compact JWS as JSON.
pub fn jws_part(jws: &str, n: usize) -> Value {
    let part = jws.split('.').nth(n).expect("JWS part");
    serde_json::from_slice(&B64URL.decode(part).expect("base64url")).expect("JSON")
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Whether `program` can be run at all (for skip notices).
pub fn have(program: &str, probe: &[&str]) -> bool {
    Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Someone with the database file raises the shipped policy's payment limit in its
/// stored bundle (still valid Rego, the version's name kept), the triggers dropped as
/// needed. Returns the version and the bundle's bytes as they were.
pub fn raise_the_stored_payment_limit(db: &rusqlite::Connection) -> (String, Vec<u8>) {
    let (version, bundle): (String, Vec<u8>) = db
        .query_row("SELECT version, bundle FROM policies", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("the shipped bundle");
    let mut doc: Value = serde_json::from_slice(&bundle).expect("bundle JSON");
    let files = doc["files"].as_object_mut().expect("files");
    let (name, source) = files.iter().next().expect("a file");
    let source = source.as_str().expect("source");
    let raised = source.replace("\"payment\": 5000", "\"payment\": 900000");
    assert_ne!(raised, source, "the limit is in the shipped policy");
    let name = name.clone();
    files.insert(name, json!(raised));
    db.execute_batch("DROP TRIGGER IF EXISTS policies_no_update")
        .expect("drop trigger");
    db.execute(
        "UPDATE policies SET bundle = ?1 WHERE version = ?2",
        rusqlite::params![serde_json::to_vec(&doc).expect("json"), version],
    )
    .expect("edit the bundle");
    (version, bundle)
}
