//! The harness for replica tests: a fresh PostgreSQL database per test, several real
//! `sealgate serve` processes on free ports sharing it (and one data directory, for the
//! shared seal and log keys), an HTTP client, and checks of the ledger through the API
//! alone: every entry's leaf hash recomputed, contiguous indices, checkpoints verified
//! against the log key, consistency proofs between checkpoints.
//!
//! Needs `SEALGATE_TEST_DATABASE_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`); without it a test prints a skip
//! notice and passes. Processes are SIGKILLed when the cluster is dropped.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::Rng;
use reqwest::header::CONTENT_TYPE;
use sealgate_ledger::{Checkpoint, Frontier, NoteVerifier};
use serde_json::{json, Value};

use crate::served::{free_port, Served};
pub const ENV: &str = "SEALGATE_TEST_DATABASE_URL";
/// The default log origin (`serve` without `--origin`).
pub const ORIGIN: &str = "sealgate.local/log";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The admin URL, or None after printing why the test is skipped.
pub fn admin_url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: {ENV} not set");
            None
        }
    }
}

/// `admin` with its database name replaced by `db` (URL form).
fn url_for(admin: &str, db: &str) -> String {
    let (base, rest) = admin
        .rsplit_once('/')
        .expect("SEALGATE_TEST_DATABASE_URL in URL form: postgres://user@host:port/db");
    let query = rest.split_once('?').map(|(_, q)| format!("?{q}"));
    format!("{base}/{db}{}", query.unwrap_or_default())
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the admin database");
    tokio::spawn(connection);
    client
}

/// A database of its own, dropped by `Cluster::finish` (a failed test leaves it; the
/// next run drops those more than an hour old).
pub struct Db {
    pub name: String,
    pub url: String,
    admin: String,
}

impl Db {
    pub async fn create(admin: &str) -> Db {
        let client = admin_client(admin).await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        sweep(&client, now).await;
        let name = format!(
            "sealgate_replicas_{now}_{:08x}",
            rand::thread_rng().gen::<u32>()
        );
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        Db {
            url: url_for(admin, &name),
            name,
            admin: admin.to_owned(),
        }
    }

    pub async fn drop_db(&self) {
        let client = admin_client(&self.admin).await;
        let _ = client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

async fn sweep(client: &tokio_postgres::Client, now: u64) {
    let Ok(rows) = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'sealgate\\_replicas\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let created = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|t| t + 3600 < now) {
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

pub fn client() -> reqwest::Client {
    crate::served::client(Duration::from_secs(30))
}

/// A response: status and body (parsed as JSON when it is JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub text: String,
    pub json: Value,
}

/// An API key's token.
#[derive(Clone, Debug)]
pub struct Key {
    pub token: String,
}

/// What an approved or denied decision answered.
#[derive(Clone, Debug)]
pub struct Answered {
    pub index: u64,
    pub leaf_hash: String,
}

/// Several replicas on one database and one data directory.
pub struct Cluster {
    pub db: Db,
    root: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub replicas: Vec<Served>,
    pub admin_token: String,
    pub http: reqwest::Client,
    extra: Vec<String>,
    spawned: u32,
}

impl Cluster {
    /// `n` replicas started together on a fresh database (they race to migrate and
    /// bootstrap, which the advisory locks serialise). None when the test is skipped.
    pub async fn start(n: usize, extra: &[&str]) -> Option<Cluster> {
        let admin = admin_url()?;
        let db = Db::create(&admin).await;
        let root = tempfile::Builder::new()
            .prefix("sealgate-replicas-")
            .tempdir()
            .expect("tempdir");
        let data_dir = root.path().join("data");
        let mut cluster = Cluster {
            db,
            data_dir,
            root,
            replicas: Vec::new(),
            admin_token: String::new(),
            http: client(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            spawned: 0,
        };
        for _ in 0..n {
            let r = cluster.spawn();
            cluster.replicas.push(r);
        }
        for i in 0..n {
            cluster.wait_healthy(i).await;
        }
        cluster.admin_token = std::fs::read_to_string(cluster.data_dir.join("admin-token"))
            .expect("admin-token written on first start")
            .trim()
            .to_owned();
        Some(cluster)
    }

    fn spawn(&mut self) -> Served {
        self.spawned += 1;
        let port = free_port();
        let log_path = self
            .root
            .path()
            .join(format!("replica-{}.log", self.spawned));
        let mut args: Vec<OsString> = vec![
            "--data-dir".into(),
            self.data_dir.clone().into(),
            "--database-url".into(),
            self.db.url.clone().into(),
            "--checkpoint-interval-ms".into(),
            "200".into(),
        ];
        args.extend(self.extra.iter().map(Into::into));
        Served::spawn(port, self.root.path(), log_path, args)
    }

    async fn wait_healthy(&mut self, i: usize) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !self.replicas[i].is_running() {
                panic!("replica {i} exited early; log:\n{}", self.replicas[i].log());
            }
            if let Ok(r) = self
                .http
                .get(self.replicas[i].url("/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "replica {i} did not become ready; log:\n{}",
                    self.replicas[i].log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Drops the database (after killing every replica).
    pub async fn finish(mut self) {
        for r in &mut self.replicas {
            r.kill();
        }
        self.db.drop_db().await;
    }

    /// All replica logs, for failure messages.
    /// Every replica's log for a failure message, with the per-request lines
    /// (one per failed request, thousands during an outage) counted instead of
    /// shown, so what the replicas did themselves stays readable.
    pub fn logs(&self) -> String {
        const PER_REQUEST: [&str; 2] = [
            "\"target\":\"sealgate_server::middleware\"",
            "\"target\":\"sealgate_server::error\"",
        ];
        (1..=self.spawned)
            .map(|n| {
                let log =
                    std::fs::read_to_string(self.root.path().join(format!("replica-{n}.log")))
                        .unwrap_or_default();
                let (requests, own): (Vec<&str>, Vec<&str>) = log
                    .lines()
                    .partition(|l| PER_REQUEST.iter().any(|t| l.contains(t)));
                format!(
                    "--- replica-{n}.log ({} per-request lines not shown)\n{}",
                    requests.len(),
                    own.join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn send(
        &self,
        replica: usize,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Resp, reqwest::Error> {
        send(
            &self.http,
            &self.replicas[replica].base,
            method,
            path,
            token,
            body,
        )
        .await
    }

    pub async fn get(&self, replica: usize, path: &str, token: Option<&str>) -> Resp {
        self.send(replica, reqwest::Method::GET, path, token, None)
            .await
            .expect("request sent")
    }

    pub async fn post(
        &self,
        replica: usize,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Resp {
        self.send(replica, reqwest::Method::POST, path, token, Some(body))
            .await
            .expect("request sent")
    }

    pub async fn create_key(&self, replica: usize, role: &str) -> Key {
        let r = self
            .post(
                replica,
                "/v1/keys",
                Some(&self.admin_token),
                &json!({"role": role, "name": format!("replicas {role}")}),
            )
            .await;
        assert_eq!(r.status, 201, "creating a {role} key: {}", r.text);
        Key {
            token: r.json["token"].as_str().expect("token").to_owned(),
        }
    }

    /// Indices of replicas whose /readyz says they lead the log.
    pub async fn leaders(&self) -> Vec<usize> {
        let mut leaders = Vec::new();
        for i in 0..self.replicas.len() {
            if let Ok(r) = self
                .send(i, reqwest::Method::GET, "/readyz", None, None)
                .await
            {
                if r.json["leader"] == json!(true) {
                    leaders.push(i);
                }
            }
        }
        leaders
    }

    /// Waits until exactly one running replica leads; returns it.
    pub async fn wait_for_one_leader(&mut self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let running: Vec<usize> = (0..self.replicas.len())
                .filter(|&i| self.replicas[i].is_running())
                .collect();
            let leaders: Vec<usize> = self
                .leaders()
                .await
                .into_iter()
                .filter(|i| running.contains(i))
                .collect();
            if leaders.len() == 1 {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "no single leader within {within:?} (leaders: {leaders:?}); logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The log's verifier key, as GET /v1/ledger/key on `replica` gives it.
    pub async fn verifier(&self, replica: usize) -> NoteVerifier {
        let r = self.get(replica, "/v1/ledger/key", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.text.trim().parse().expect("note verifier key")
    }

    /// The latest checkpoint from `replica`, opened with the log key.
    pub async fn checkpoint(&self, replica: usize, verifier: &NoteVerifier) -> Checkpoint {
        let r = self
            .get(replica, "/v1/ledger/checkpoint", Some(&self.admin_token))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        Checkpoint::open(&r.text, ORIGIN, std::slice::from_ref(verifier))
            .unwrap_or_else(|e| {
                panic!(
                    "checkpoint from replica {replica} does not verify: {e}\n{}",
                    r.text
                )
            })
            .0
    }

    /// Polls `replica`'s checkpoint until it covers at least `size` entries.
    pub async fn checkpoint_covering(
        &self,
        replica: usize,
        verifier: &NoteVerifier,
        size: u64,
        within: Duration,
    ) -> Checkpoint {
        let deadline = Instant::now() + within;
        loop {
            let cp = self.checkpoint(replica, verifier).await;
            if cp.size >= size {
                return cp;
            }
            assert!(
                Instant::now() < deadline,
                "replica {replica}'s checkpoint stayed at {} < {size} for {within:?}; logs:\n{}",
                cp.size,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The ledger's size from /readyz of `replica`.
    pub async fn tree_size(&self, replica: usize) -> u64 {
        let r = self.get(replica, "/readyz", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["tree_size"].as_u64().expect("tree_size")
    }

    /// Reads entries `0..size` spread over `readers`, recomputes each leaf hash from the
    /// entry (RFC 8785 bytes) and checks it against the served one; returns the leaf
    /// hashes (base64) in index order.
    pub async fn ledger(&self, size: u64, readers: &[usize]) -> Vec<String> {
        let mut leaves = Vec::with_capacity(size as usize);
        for i in 0..size {
            let replica = readers[i as usize % readers.len()];
            let r = self
                .get(
                    replica,
                    &format!("/v1/ledger/entries/{i}"),
                    Some(&self.admin_token),
                )
                .await;
            assert_eq!(
                r.status, 200,
                "entry {i} from replica {replica}: {}",
                r.text
            );
            assert_eq!(r.json["index"], json!(i), "{}", r.text);
            let canonical =
                sealgate_core::canonical::value_to_vec(&r.json["entry"]).expect("canonical entry");
            let recomputed = B64.encode(sealgate_ledger::leaf_hash(&canonical));
            let served = r.json["leaf_hash"].as_str().expect("leaf_hash").to_owned();
            assert_eq!(
                recomputed, served,
                "entry {i}: leaf hash does not match its bytes"
            );
            leaves.push(served);
        }
        leaves
    }

    /// Checks a checkpoint's root against the leaves (base64 leaf hashes, index order).
    pub fn check_root(cp: &Checkpoint, leaves: &[String]) {
        assert!(
            cp.size as usize <= leaves.len(),
            "checkpoint of {} entries beyond the {} read",
            cp.size,
            leaves.len()
        );
        let mut f = Frontier::new();
        for leaf in &leaves[..cp.size as usize] {
            let h: [u8; 32] = B64.decode(leaf).unwrap().try_into().unwrap();
            f.push(h);
        }
        assert_eq!(
            f.root(),
            cp.root,
            "checkpoint root of size {} differs from the entries",
            cp.size
        );
    }

    /// Verifies a consistency proof from `replica` between two checkpoints.
    pub async fn check_consistency(&self, replica: usize, old: &Checkpoint, new: &Checkpoint) {
        if old.size == 0 {
            return;
        }
        if old.size == new.size {
            assert_eq!(
                old.root, new.root,
                "two checkpoints of size {} differ",
                old.size
            );
            return;
        }
        let r = self
            .get(
                replica,
                &format!(
                    "/v1/ledger/proof/consistency?first={}&second={}",
                    old.size, new.size
                ),
                Some(&self.admin_token),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let proof: Vec<Vec<u8>> = r.json["proof"]
            .as_array()
            .expect("proof")
            .iter()
            .map(|h| B64.decode(h.as_str().unwrap()).unwrap())
            .collect();
        sealgate_ledger::verify_consistency_bytes(old.size, new.size, &proof, &old.root, &new.root)
            .unwrap_or_else(|e| {
                panic!(
                    "consistency {} → {} does not verify: {e:?}",
                    old.size, new.size
                )
            });
    }

    /// Every answered decision sits at its index with the leaf hash it was answered
    /// with, and no two answers share an index.
    pub fn check_answered(answered: &[Answered], leaves: &[String]) {
        let mut seen = HashMap::new();
        for a in answered {
            if let Some(prev) = seen.insert(a.index, a.leaf_hash.clone()) {
                panic!(
                    "index {} answered twice ({prev} and {})",
                    a.index, a.leaf_hash
                );
            }
            let stored = leaves.get(a.index as usize).unwrap_or_else(|| {
                panic!(
                    "answered index {} is not in the ledger of {}",
                    a.index,
                    leaves.len()
                )
            });
            assert_eq!(
                stored, &a.leaf_hash,
                "entry {} differs from what was answered",
                a.index
            );
        }
    }
}

pub async fn send(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Resp, reqwest::Error> {
    let mut req = http.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(b).unwrap());
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Resp { status, text, json })
}

/// A small payment (approved by the shipped policy) or, every fifth, a large one (denied).
pub fn manifest(n: u64) -> Value {
    let amount = if n % 5 == 4 {
        100_000
    } else {
        1000 + (n % 3000) as i64
    };
    json!({"manifest": {
        "agent_id": format!("replica-agent-{}", n % 7),
        "org_id": "org_replicas",
        "user_id": "user_1",
        "provider": "stripe",
        "method": "payment",
        "parameters": {"amount": amount, "currency": "usd", "invoice": format!("INV-{n}")},
        "reasoning": "invoice is due",
        "confidence_score": 0.9,
        "environment": "staging",
    }})
}

/// A decision answer's index and leaf hash (None unless 200).
pub fn answered(r: &Resp) -> Option<Answered> {
    if r.status != 200 {
        return None;
    }
    Some(Answered {
        index: r.json["ledger_index"].as_u64().expect("ledger_index"),
        leaf_hash: r.json["leaf_hash"].as_str().expect("leaf_hash").to_owned(),
    })
}

/// One request of a load run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub replica: usize,
    pub sent: Instant,
    pub done: Instant,
    /// None when the request got no answer (connection refused or reset).
    pub status: Option<u16>,
    pub answered: Option<Answered>,
}

/// Load over `replicas`: `per_replica` workers each, every worker sending decisions one
/// after another until `stop` is set (a short pause after a failure). Returns every
/// request's outcome.
pub fn spawn_load(
    http: &reqwest::Client,
    replicas: &[(usize, String)],
    token: &str,
    per_replica: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Outcome>>> {
    use std::sync::atomic::Ordering;
    let mut workers = Vec::new();
    for (w, (replica, base)) in replicas
        .iter()
        .flat_map(|r| std::iter::repeat_n(r.clone(), per_replica))
        .enumerate()
    {
        let (http, token, stop) = (http.clone(), token.to_owned(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut n = w as u64 * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let sent = Instant::now();
                let r = send(
                    &http,
                    &base,
                    reqwest::Method::POST,
                    "/v1/manifest/validate",
                    Some(&token),
                    Some(&manifest(n)),
                )
                .await;
                let done = Instant::now();
                let (status, ans) = match &r {
                    Ok(r) => (Some(r.status), answered(r)),
                    Err(_) => (None, None),
                };
                if status != Some(200) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                out.push(Outcome {
                    replica,
                    sent,
                    done,
                    status,
                    answered: ans,
                });
            }
            out
        }));
    }
    workers
}

/// Collects the outcomes of `spawn_load`'s workers.
pub async fn join_load(workers: Vec<tokio::task::JoinHandle<Vec<Outcome>>>) -> Vec<Outcome> {
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("load worker"));
    }
    all
}
