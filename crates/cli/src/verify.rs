//! `sealgate verify` and `sealgate ledger export`: check a ledger offline, trusting
//! nothing but a public key (and optionally a checkpoint) the auditor already holds.
//!
//! Every leaf hash is recomputed from the stored canonical bytes (a tree that is
//! consistent over edited data still fails), the tree is rebuilt and compared with
//! every stored checkpoint (whose signatures are checked) and, when the data
//! directory is at hand, with every stored tree node, which pinpoints reordered
//! entries. Then the cross-references: every seal is granted by an approved
//! decision, every redemption names a seal granted earlier, no seal is redeemed twice.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use clap::Args;
use rand::Rng;
use sealgate_core::canonical;
use sealgate_core::entry::{Entry, Status};
use sealgate_ledger::{
    inclusion_plan, leaf_hash, verify_inclusion, Checkpoint, Frontier, Hash, NodeId, NoteSigner,
    NoteVerifier,
};
use sealgate_store::{Store, StoredEntry};
use sealgate_store_sqlite::SqliteStore;
use serde_json::{json, Value};

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// Data directory holding ledger.db [default: ./sealgate-data].
    #[arg(long, env = "SEALGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A file written by `sealgate ledger export`, instead of a data directory.
    #[arg(long, conflicts_with = "data_dir")]
    export: Option<PathBuf>,
    /// A running server (http://host:port), read through its tlog-tiles view with an
    /// auditor token from SEALGATE_TOKEN; checks the entries against its latest checkpoint.
    #[arg(long, conflicts_with_all = ["data_dir", "export"])]
    server: Option<String>,
    /// The log's verifier key, C2SP form `name+keyid+base64` (GET /v1/ledger/key).
    #[arg(long)]
    key: Option<String>,
    /// A file holding the verifier key.
    #[arg(long, conflicts_with = "key")]
    key_file: Option<PathBuf>,
    /// A signed checkpoint you trust (kept from earlier); the ledger must extend it.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Check only N random entries, each with an inclusion proof against the latest checkpoint.
    #[arg(long)]
    sample: Option<u64>,
    /// Also parse every entry fully and check it is in RFC 8785 canonical form (slower).
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    #[arg(long, env = "SEALGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Output file [default: standard output].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What was found wrong: the first problem, with the index it concerns.
struct Tamper(String);

const CHUNK: u64 = 8192;

enum Source {
    Store(SqliteStore),
    Export {
        entries: Vec<StoredEntry>,
        checkpoints: Vec<String>,
        key: Option<String>,
    },
}

impl Source {
    async fn size(&self) -> anyhow::Result<u64> {
        Ok(match self {
            Source::Store(s) => s.tree_size().await?,
            Source::Export { entries, .. } => entries.len() as u64,
        })
    }

    async fn chunk(&self, start: u64, end: u64) -> anyhow::Result<Vec<StoredEntry>> {
        Ok(match self {
            Source::Store(s) => s.range(start, end).await?,
            Source::Export { entries, .. } => entries[start as usize..end as usize].to_vec(),
        })
    }

    async fn checkpoints(&self) -> anyhow::Result<Vec<String>> {
        Ok(match self {
            Source::Store(s) => s.checkpoints().await?.into_iter().map(|c| c.note).collect(),
            Source::Export { checkpoints, .. } => checkpoints.clone(),
        })
    }

    /// Stored tree nodes, where the source has them.
    async fn nodes(&self, ids: &[NodeId]) -> anyhow::Result<Option<Vec<Option<Hash>>>> {
        Ok(match self {
            Source::Store(s) => Some(s.nodes(ids).await?),
            Source::Export { .. } => None,
        })
    }
}

fn data_dir(d: Option<PathBuf>) -> PathBuf {
    d.unwrap_or_else(|| PathBuf::from("./sealgate-data"))
}

fn open_store(dir: &Path) -> anyhow::Result<SqliteStore> {
    let path = dir.join("ledger.db");
    SqliteStore::open_read_only(&path).with_context(|| format!("opening {}", path.display()))
}

pub(crate) async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let dir = data_dir(args.data_dir);
    let store = open_store(&dir)?;
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let size = store.tree_size().await?;
    let key = std::fs::read_to_string(dir.join("log-key.pem"))
        .ok()
        .and_then(|_| sealgate_server::keystore::load_key(&dir.join("log-key.pem")).ok());
    let origin = store
        .latest_checkpoint()
        .await?
        .and_then(|c| c.note.lines().next().map(str::to_owned));
    let vkey = match (key, &origin) {
        (Some(k), Some(o)) => NoteSigner::new(o.clone(), k)
            .ok()
            .map(|s| s.verifier().to_string()),
        _ => None,
    };
    writeln!(
        out,
        "{}",
        json!({"kind": "header", "format": "sealgate-ledger-export/1", "tree_size": size, "log_key": vkey})
    )?;
    let mut start = 0;
    while start < size {
        let end = (start + CHUNK).min(size);
        for e in store.range(start, end).await? {
            writeln!(
                out,
                "{}",
                json!({"kind": "entry", "index": e.index, "leaf_hash": B64.encode(e.leaf_hash), "canonical": B64.encode(&e.canonical)})
            )?;
        }
        start = end;
    }
    for c in store.checkpoints().await? {
        writeln!(
            out,
            "{}",
            json!({"kind": "checkpoint", "tree_size": c.tree_size, "note": c.note})
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn read_export(path: &Path) -> anyhow::Result<Source> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (mut entries, mut checkpoints, mut key) = (Vec::new(), Vec::new(), None);
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
        let bad = || anyhow::anyhow!("{}:{}: malformed {} line", path.display(), n + 1, v["kind"]);
        match v["kind"].as_str() {
            Some("header") => key = v["log_key"].as_str().map(str::to_owned),
            Some("entry") => {
                let index = v["index"].as_u64().ok_or_else(bad)?;
                let leaf: Hash = v["leaf_hash"]
                    .as_str()
                    .and_then(|s| B64.decode(s).ok())
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(bad)?;
                let canonical = v["canonical"]
                    .as_str()
                    .and_then(|s| B64.decode(s).ok())
                    .ok_or_else(bad)?;
                entries.push(StoredEntry {
                    index,
                    canonical,
                    leaf_hash: leaf,
                });
            }
            Some("checkpoint") => checkpoints.push(v["note"].as_str().ok_or_else(bad)?.to_owned()),
            _ => bail!("{}:{}: unknown line kind", path.display(), n + 1),
        }
    }
    Ok(Source::Export {
        entries,
        checkpoints,
        key,
    })
}

pub(crate) async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (source, dir) = match (&args.export, &args.server) {
        (Some(path), _) => (read_export(path)?, None),
        (None, Some(server)) => (read_server(server).await?, None),
        (None, None) => {
            let dir = data_dir(args.data_dir.clone());
            (Source::Store(open_store(&dir)?), Some(dir))
        }
    };
    let verifier = trusted_key(&args, &source, dir.as_deref())?;
    let outcome = match args.sample {
        Some(n) => sample(&source, &verifier, n).await?,
        None => full(&source, &verifier, args.checkpoint.as_deref(), args.strict).await?,
    };
    match outcome {
        Ok(summary) => {
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(Tamper(what)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"ok": false, "problem": what}))?
            );
            eprintln!("TAMPERING DETECTED: {what}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Reads the whole log from a server's tlog-tiles view: the latest checkpoint, then every
/// entry bundle up to its size. Leaf hashes are computed here, never taken from the server.
async fn read_server(server: &str) -> anyhow::Result<Source> {
    use hyper::Method;
    let token = std::env::var("SEALGATE_TOKEN")
        .context("--server needs an auditor token in SEALGATE_TOKEN")?;
    let mut conn = crate::client::Connection::open(&crate::client::authority(server)?).await?;
    let (status, body) = conn
        .send(
            Method::GET,
            "/v1/ledger/tlog/checkpoint",
            Some(&token),
            None,
        )
        .await?;
    if status != 200 {
        bail!(
            "GET checkpoint: server answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let note = String::from_utf8(body.to_vec()).context("checkpoint is not UTF-8")?;
    let size: u64 = note
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .context("checkpoint without a tree size")?;
    let mut entries = Vec::with_capacity(size as usize);
    let mut index = 0;
    while index < size {
        let width = (size - index).min(256) as u16;
        let tile = sealgate_ledger::Tile::entries(index / 256, width)?;
        let (status, body) = conn
            .send(
                Method::GET,
                &format!("/v1/ledger/tlog/{}", tile.path()),
                Some(&token),
                None,
            )
            .await?;
        if status != 200 {
            bail!("GET {}: server answered {status}", tile.path());
        }
        let bundle = sealgate_ledger::tiles::decode_bundle(&body)?;
        if bundle.len() != usize::from(width) {
            bail!(
                "{}: {} entries, expected {width}",
                tile.path(),
                bundle.len()
            );
        }
        for bytes in bundle {
            entries.push(StoredEntry {
                index,
                canonical: bytes.to_vec(),
                leaf_hash: leaf_hash(bytes),
            });
            index += 1;
        }
    }
    Ok(Source::Export {
        entries,
        checkpoints: vec![note],
        key: None,
    })
}

fn trusted_key(
    args: &VerifyArgs,
    source: &Source,
    dir: Option<&Path>,
) -> anyhow::Result<NoteVerifier> {
    let text = match (&args.key, &args.key_file) {
        (Some(k), _) => k.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => {
            let derived = match (source, dir) {
                (Source::Export { key: Some(k), .. }, _) => Some(k.clone()),
                (Source::Store(_), Some(dir)) => derive_key(dir),
                _ => None,
            };
            let k = derived.context(
                "no trusted key: pass --key name+keyid+base64 (from GET /v1/ledger/key)",
            )?;
            eprintln!("note: trusting the log key found beside the ledger; pass --key to pin the one you hold");
            k
        }
    };
    text.trim()
        .parse::<NoteVerifier>()
        .map_err(|e| anyhow::anyhow!("--key: not a C2SP verifier key: {e}"))
}

fn derive_key(dir: &Path) -> Option<String> {
    let key = sealgate_server::keystore::load_key(&dir.join("log-key.pem")).ok()?;
    let store = open_store(dir).ok()?;
    let origin = futures_lite_block(store)?;
    NoteSigner::new(origin, key)
        .ok()
        .map(|s| s.verifier().to_string())
}

/// The origin named by the ledger's checkpoints (the first line of a note).
fn futures_lite_block(store: SqliteStore) -> Option<String> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| handle.block_on(store.latest_checkpoint()))
        .ok()
        .flatten()
        .and_then(|c| c.note.lines().next().map(str::to_owned))
}

/// Opens and parses every stored checkpoint; the first bad one is tampering.
fn open_checkpoints(notes: &[String], verifier: &NoteVerifier) -> Result<Vec<Checkpoint>, Tamper> {
    let mut out: Vec<Checkpoint> = Vec::with_capacity(notes.len());
    for (i, note) in notes.iter().enumerate() {
        let (cp, _) = Checkpoint::open(note, verifier.name(), std::slice::from_ref(verifier))
            .map_err(|e| {
                Tamper(format!(
                    "checkpoint #{i}: does not verify with the trusted key ({e})"
                ))
            })?;
        if let Some(prev) = out.last() {
            if cp.size < prev.size {
                return Err(Tamper(format!(
                    "checkpoint #{i}: size {} is below the previous checkpoint's {}",
                    cp.size, prev.size
                )));
            }
        }
        out.push(cp);
    }
    Ok(out)
}

async fn full(
    source: &Source,
    verifier: &NoteVerifier,
    trusted: Option<&Path>,
    strict: bool,
) -> anyhow::Result<Result<Value, Tamper>> {
    let mut checkpoints = match open_checkpoints(&source.checkpoints().await?, verifier) {
        Ok(c) => c,
        Err(t) => return Ok(Err(t)),
    };
    let stored_count = checkpoints.len();
    if let Some(path) = trusted {
        let note =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        match Checkpoint::open(&note, verifier.name(), std::slice::from_ref(verifier)) {
            Ok((cp, _)) => checkpoints.push(cp),
            Err(e) => bail!(
                "--checkpoint {}: does not verify with the trusted key: {e}",
                path.display()
            ),
        }
    }
    let size = source.size().await?;
    let mut by_size: Vec<(u64, Hash, String)> = checkpoints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let label = if i < stored_count {
                format!("stored checkpoint #{i}")
            } else {
                "the trusted checkpoint".into()
            };
            (c.size, c.root, label)
        })
        .collect();
    by_size.sort_by_key(|(s, _, _)| *s);
    if let Some((s, _, label)) = by_size.iter().rev().find(|(s, _, _)| *s > size) {
        return Ok(Err(Tamper(format!(
            "{label} covers {s} entries but the ledger has only {size}: entries {size}..{s} were removed"
        ))));
    }

    let mut frontier = Frontier::new();
    let mut next_checkpoint = 0;
    // Size of the last checkpoint that matched: a mismatch lies beyond it.
    let mut last_good = 0;
    let mut refs = CrossRefs::default();
    let mut start = 0;
    while start < size {
        let end = (start + CHUNK).min(size);
        let chunk = source.chunk(start, end).await?;
        let mut completed: Vec<(NodeId, Hash)> = Vec::new();
        let mut checkpoint_error = None;
        for (offset, e) in chunk.iter().enumerate() {
            let expected = start + offset as u64;
            if e.index != expected {
                return Ok(Err(Tamper(format!(
                    "entry {expected} is missing (found index {} in its place)",
                    e.index
                ))));
            }
            let recomputed = leaf_hash(&e.canonical);
            if recomputed != e.leaf_hash {
                return Ok(Err(Tamper(format!(
                    "entry {expected}: its bytes hash to {} but the stored leaf hash is {}: the entry was changed",
                    B64.encode(recomputed),
                    B64.encode(e.leaf_hash)
                ))));
            }
            frontier.append_with(recomputed, |id, h| {
                if id.level > 0 {
                    completed.push((id, *h));
                }
            });
            while let Some((s, root, label)) = by_size.get(next_checkpoint) {
                if *s != frontier.size() {
                    break;
                }
                if frontier.root() != *root {
                    checkpoint_error = Some(Tamper(format!(
                        "{label} (size {s}) does not match the rebuilt tree: an entry in {last_good}..{s} was changed, reordered, removed or re-appended (first bad index {last_good} or later)"
                    )));
                    break;
                }
                last_good = *s;
                next_checkpoint += 1;
            }
            if checkpoint_error.is_some() {
                break;
            }
        }
        if checkpoint_error.is_none() && chunk.len() as u64 != end - start {
            return Ok(Err(Tamper(format!(
                "entries {start}..{end}: only {} present",
                chunk.len()
            ))));
        }
        // Level by level, so the backend reads consecutive runs; the lowest break is reported.
        completed.sort_by_key(|(id, _)| (id.level, id.index));
        let ids: Vec<NodeId> = completed.iter().map(|(id, _)| *id).collect();
        if let Some(stored) = source.nodes(&ids).await? {
            let lowest = completed
                .iter()
                .zip(stored)
                .filter(|((_, rebuilt), stored)| *stored != Some(*rebuilt))
                .min_by_key(|((id, _), _)| id.leaves().map_or(u64::MAX, |l| l.start));
            if let Some(((id, _), _)) = lowest {
                {
                    let leaves = id.leaves().unwrap_or(0..0);
                    return Ok(Err(Tamper(format!(
                        "entries {}..{} do not match stored tree node {id}: an entry in that range was reordered or replaced (first bad index {} or later)",
                        leaves.start, leaves.end, leaves.start
                    ))));
                }
            }
        }
        // A stored node pinpoints a break better than a checkpoint; failing that, the checkpoint speaks.
        if let Some(t) = checkpoint_error {
            return Ok(Err(t));
        }
        // Semantics last, so a structural break is reported at its own index first.
        for e in &chunk {
            if let Err(t) = refs.check(e.index, &e.canonical, strict) {
                return Ok(Err(t));
            }
        }
        start = end;
    }
    // Checkpoints of size 0 match the empty tree trivially; anything left unmatched is beyond the end.
    Ok(Ok(json!({
        "ok": true,
        "entries": size,
        "root": B64.encode(frontier.root()),
        "checkpoints_verified": by_size.len(),
        "seals": refs.granted.len(),
        "redemptions": refs.redeemed.len(),
        "key": verifier.to_string(),
    })))
}

#[derive(Default)]
struct CrossRefs {
    /// seal_id → (granting index, decision index)
    granted: HashMap<String, (u64, u64)>,
    /// seal_id → redemption index
    redeemed: HashMap<String, u64>,
}

impl CrossRefs {
    fn check_strict(&mut self, index: u64, bytes: &[u8]) -> Result<(), Tamper> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Tamper(format!("entry {index}: not JSON ({e})")))?;
        if canonical::value_to_vec(&value).ok().as_deref() != Some(bytes) {
            return Err(Tamper(format!(
                "entry {index}: not in RFC 8785 canonical form"
            )));
        }
        let entry: Entry = serde_json::from_value(value)
            .map_err(|e| Tamper(format!("entry {index}: not a sealgate entry ({e})")))?;
        match entry {
            Entry::Decision(d) => {
                if let Some(seal) = d.seal {
                    if d.status != Status::Approved {
                        return Err(Tamper(format!(
                            "entry {index}: grants seal {} but its status is {}",
                            seal.seal_id,
                            d.status.as_str()
                        )));
                    }
                    self.grant(index, index, seal.seal_id)?;
                }
            }
            Entry::ApprovalResolved(a) => {
                if let Some(seal) = a.seal {
                    if !a.approved {
                        return Err(Tamper(format!(
                            "entry {index}: grants seal {} for a refused approval",
                            seal.seal_id
                        )));
                    }
                    self.grant(index, a.decision_index, seal.seal_id)?;
                }
            }
            Entry::SealRedeemed(r) => {
                let Some((_, decision)) = self.granted.get(&r.seal_id) else {
                    return Err(Tamper(format!(
                        "entry {index}: redeems seal {} that no earlier entry granted",
                        r.seal_id
                    )));
                };
                if *decision != r.decision_index {
                    return Err(Tamper(format!(
                        "entry {index}: redeems seal {} naming decision {} but it was granted by {decision}",
                        r.seal_id, r.decision_index
                    )));
                }
                if let Some(first) = self.redeemed.insert(r.seal_id.clone(), index) {
                    return Err(Tamper(format!(
                        "entry {index}: redeems seal {} a second time (first at {first})",
                        r.seal_id
                    )));
                }
            }
            Entry::PolicyActivated(_) | Entry::KeyRotated(_) => {}
        }
        Ok(())
    }

    fn check(&mut self, index: u64, bytes: &[u8], strict: bool) -> Result<(), Tamper> {
        if strict {
            self.check_strict(index, bytes)
        } else {
            self.check_refs(index, bytes)
        }
    }

    /// The cross-references only, reading just the fields they need (no full parse).
    fn check_refs(&mut self, index: u64, bytes: &[u8]) -> Result<(), Tamper> {
        use std::borrow::Cow;
        #[derive(serde::Deserialize)]
        struct Grant<'a> {
            #[serde(borrow)]
            seal_id: Cow<'a, str>,
        }
        #[derive(serde::Deserialize)]
        struct Refs<'a> {
            #[serde(borrow)]
            kind: Cow<'a, str>,
            #[serde(borrow)]
            status: Option<Cow<'a, str>>,
            approved: Option<bool>,
            #[serde(borrow)]
            seal: Option<Grant<'a>>,
            #[serde(borrow)]
            seal_id: Option<Cow<'a, str>>,
            decision_index: Option<u64>,
        }
        let r: Refs<'_> = serde_json::from_slice(bytes)
            .map_err(|e| Tamper(format!("entry {index}: not a sealgate entry ({e})")))?;
        let bad = |what: &str| Tamper(format!("entry {index}: {} entry without {what}", r.kind));
        match r.kind.as_ref() {
            "decision" => {
                let status = r.status.as_deref().ok_or_else(|| bad("status"))?;
                if let Some(seal) = &r.seal {
                    if status != "approved" {
                        return Err(Tamper(format!(
                            "entry {index}: grants seal {} but its status is {status}",
                            seal.seal_id
                        )));
                    }
                    self.grant(index, index, seal.seal_id.to_string())?;
                }
            }
            "approval_resolved" => {
                if let Some(seal) = &r.seal {
                    if r.approved != Some(true) {
                        return Err(Tamper(format!(
                            "entry {index}: grants seal {} for a refused approval",
                            seal.seal_id
                        )));
                    }
                    let decision = r.decision_index.ok_or_else(|| bad("decision_index"))?;
                    self.grant(index, decision, seal.seal_id.to_string())?;
                }
            }
            "seal_redeemed" => {
                let seal_id = r.seal_id.as_deref().ok_or_else(|| bad("seal_id"))?;
                let decision_index = r.decision_index.ok_or_else(|| bad("decision_index"))?;
                let Some((_, decision)) = self.granted.get(seal_id) else {
                    return Err(Tamper(format!(
                        "entry {index}: redeems seal {seal_id} that no earlier entry granted"
                    )));
                };
                if *decision != decision_index {
                    return Err(Tamper(format!(
                        "entry {index}: redeems seal {seal_id} naming decision {decision_index} but it was granted by {decision}"
                    )));
                }
                if let Some(first) = self.redeemed.insert(seal_id.to_owned(), index) {
                    return Err(Tamper(format!(
                        "entry {index}: redeems seal {seal_id} a second time (first at {first})"
                    )));
                }
            }
            "policy_activated" | "key_rotated" => {}
            other => return Err(Tamper(format!("entry {index}: unknown kind {other:?}"))),
        }
        Ok(())
    }

    fn grant(&mut self, index: u64, decision: u64, seal_id: String) -> Result<(), Tamper> {
        if let Some((first, _)) = self.granted.get(&seal_id) {
            return Err(Tamper(format!(
                "entry {index}: grants seal {seal_id} already granted by entry {first}"
            )));
        }
        self.granted.insert(seal_id, (index, decision));
        Ok(())
    }
}

async fn sample(
    source: &Source,
    verifier: &NoteVerifier,
    n: u64,
) -> anyhow::Result<Result<Value, Tamper>> {
    let checkpoints = match open_checkpoints(&source.checkpoints().await?, verifier) {
        Ok(c) => c,
        Err(t) => return Ok(Err(t)),
    };
    let Some(latest) = checkpoints.iter().max_by_key(|c| c.size) else {
        bail!("--sample needs at least one stored checkpoint");
    };
    let size = latest.size;
    if size > source.size().await? {
        return Ok(Err(Tamper(format!(
            "latest checkpoint covers {size} entries but the ledger has fewer"
        ))));
    }
    let mut rng = rand::thread_rng();
    let mut checked = 0;
    for _ in 0..n.min(size) {
        let index = rng.gen_range(0..size);
        let entry = source
            .chunk(index, index + 1)
            .await?
            .pop()
            .context("entry vanished")?;
        let leaf = leaf_hash(&entry.canonical);
        if leaf != entry.leaf_hash {
            return Ok(Err(Tamper(format!(
                "entry {index}: its bytes do not hash to the stored leaf hash"
            ))));
        }
        let plan = inclusion_plan(index, size)?;
        let proof = match source {
            Source::Store(store) => sealgate_store::assemble(store, &plan).await,
            Source::Export { .. } => {
                bail!("--sample needs stored tree nodes: use it with --data-dir")
            }
        };
        let ok = proof
            .map(|p| verify_inclusion(&leaf, index, size, &p, &latest.root).is_ok())
            .unwrap_or(false);
        if !ok {
            return Ok(Err(Tamper(format!(
                "entry {index}: no valid inclusion proof in the checkpointed tree of {size}"
            ))));
        }
        checked += 1;
    }
    Ok(Ok(
        json!({"ok": true, "sampled": checked, "tree_size": size, "root": B64.encode(latest.root)}),
    ))
}
