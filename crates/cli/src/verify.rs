//! `sealgate verify` and `sealgate ledger export`: check a ledger offline, trusting
//! nothing but a public key (and optionally a checkpoint) the auditor already holds.
//!
//! Every leaf hash is recomputed from the stored canonical bytes (a tree that is
//! consistent over edited data still fails), the tree is rebuilt and compared with
//! every stored checkpoint (whose signatures are checked) and, when the data
//! directory is at hand, with every stored tree node, which pinpoints reordered
//! entries. Then the cross-references: every seal is granted by an approved
//! decision, every redemption names a seal granted earlier, no seal is redeemed twice.
//! Last, for a data directory, the tables the server decides by against what the
//! entries imply ([`tables`]).
//!
//! A ledger.db is read from one SQLite snapshot, one statement streaming its rows;
//! by default a second thread reads the entries and their cross-reference claims
//! while this one hashes them and rebuilds the tree. The speed, and how it was
//! measured, is in README.md (Performance).

mod export;
mod refs;
mod tables;

use std::ops::{ControlFlow, Range};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use clap::Args;
use sealgate_ledger::{
    leaf_hash, Checkpoint, Frontier, Hash, NodeId, NoteSigner, NoteVerifier, EMPTY_ROOT,
};
use sealgate_store::spot_check::check_entry;
use sealgate_store::{Store, StoreError};
use sealgate_store_sqlite::{DecidingRow, DecidingTable, LedgerScan, SqliteStore};
use serde_json::{json, Value};

use self::export::ExportFile;
use self::refs::CrossRefs;

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// Data directory holding ledger.db [default: SEALGATE_DATA_DIR, else ./sealgate-data].
    /// (Read from the environment by hand: clap would count the variable as the flag
    /// given, and refuse it beside --export or --server.)
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A file written by `sealgate ledger export`, instead of a data directory.
    #[arg(long, conflicts_with = "data_dir")]
    export: Option<PathBuf>,
    /// A running server (http://host:port, or https://host[:port] through a TLS proxy,
    /// trusting the system's CA certificates or SSL_CERT_FILE), read through its
    /// tlog-tiles view with an auditor token from SEALGATE_TOKEN; checks the entries
    /// against its latest checkpoint.
    #[arg(long, conflicts_with_all = ["data_dir", "export"])]
    server: Option<String>,
    /// The log's verifier key, C2SP form `name+keyid+base64` (GET /v1/ledger/key).
    #[arg(long)]
    key: Option<String>,
    /// A file holding the verifier key.
    #[arg(long, conflicts_with = "key")]
    key_file: Option<PathBuf>,
    /// A file holding a signed checkpoint you trust (kept from earlier, e.g. from GET
    /// /v1/ledger/checkpoint); the ledger must extend it.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Check only N (at least 1) distinct random entries of a data directory, each with an
    /// inclusion proof against the latest stored checkpoint. A spot check: it does not
    /// compare a trusted checkpoint, so it cannot see a rollback; run the full check.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..),
          conflicts_with_all = ["checkpoint", "strict", "one_thread", "export", "server"])]
    sample: Option<u64>,
    /// Also parse every entry fully and check it is in RFC 8785 canonical form (slower).
    #[arg(long)]
    strict: bool,
    /// Read, hash and check on one thread (by default, for a data directory or an
    /// export, a second thread reads the entries and their cross-references while this
    /// one hashes them).
    #[arg(long)]
    one_thread: bool,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    #[arg(long, env = "SEALGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Output file [default: standard output].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What was found wrong: the first problem, with the index it concerns. Also an
/// error, for a reader that finds it deep inside a read ([`corrupt_is_tampering`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tamper(String);

impl std::fmt::Display for Tamper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Tamper {}

/// A server that answered a request of `verify --server` with a failure (an error
/// status): the check could not be made. Exit 1, as for the other commands a server
/// refuses; exit 2 stays for what is wrong on this side (usage, an unreachable server).
#[derive(Debug)]
struct ServerFailed(String);

impl std::fmt::Display for ServerFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerFailed {}

const CHUNK: u64 = 8192;

/// Where the entries come from. Exports and servers are streamed: their entries are
/// checked as they are read and not kept.
enum Source {
    Store(SqliteStore),
    Export(ExportFile),
    Server(ServerLog),
}

fn data_dir(d: Option<PathBuf>) -> PathBuf {
    d.or_else(|| std::env::var_os("SEALGATE_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("./sealgate-data"))
}

fn open_store(dir: &Path) -> anyhow::Result<SqliteStore> {
    let path = dir.join("ledger.db");
    SqliteStore::open_read_only(&path).with_context(|| format!("opening {}", path.display()))
}

pub(crate) async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let dir = data_dir(args.data_dir);
    if let Some(out) = &args.out {
        refuse_inside(&dir, out)?;
    }
    let store = open_store(&dir)?;
    let log_key = derive_key(&dir);
    // SQLite calls block: the export leaves the runtime's worker thread for its run.
    tokio::task::block_in_place(|| {
        let scan = store.scan()?;
        match &args.out {
            Some(path) => export::write_file(&scan, log_key.as_deref(), path),
            None => {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                export::write(&scan, log_key.as_deref(), &mut out)
                    .context("writing the export to standard output")
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Refuses an export written into the data directory itself, where it could replace
/// the ledger, a key or the admin token.
fn refuse_inside(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let (Ok(data), Ok(target)) = (dir.canonicalize(), parent.canonicalize()) {
        if target.starts_with(&data) {
            bail!(
                "--out {}: inside the data directory {}; write the export elsewhere",
                out.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

pub(crate) async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    // Opening an export reads its header and checkpoints (a /1 export, all of it), so
    // what it finds is judged like what the check finds.
    let outcome = match corrupt_is_tampering(check(&args).await) {
        Err(e) if e.downcast_ref::<ServerFailed>().is_some() => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(1));
        }
        outcome => outcome?,
    };
    match outcome {
        Ok(summary) => {
            warn_unanchored(&summary);
            crate::out(serde_json::to_string_pretty(&summary)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(Tamper(what)) => {
            eprintln!("TAMPERING DETECTED: {what}");
            // Tampering is exit 1 even when the report cannot be written: stderr said it.
            let _ = crate::out(serde_json::to_string_pretty(
                &json!({"ok": false, "problem": what}),
            )?);
            Ok(ExitCode::from(1))
        }
    }
}

/// Entries after the latest signed checkpoint were checked (hashes, tree,
/// cross-references) but no signature covers them: say so on stderr, which the exit
/// code alone would not. A live ledger has up to a checkpoint interval's worth.
fn warn_unanchored(summary: &Value) {
    let unanchored = summary["unanchored_entries"].as_u64().unwrap_or(0);
    if unanchored > 0 {
        eprintln!(
            "warning: the last {unanchored} entries come after the latest signed checkpoint \
             (size {}): they were checked, but no signature of the log covers them yet",
            summary["anchored_entries"]
        );
    }
}

/// Opens the source `args` name and checks it: in full, or a sample of a data directory.
async fn check(args: &VerifyArgs) -> anyhow::Result<Result<Value, Tamper>> {
    let (mut source, dir) = match (&args.export, &args.server) {
        (Some(path), _) => (Source::Export(ExportFile::open(path)?), None),
        (None, Some(server)) => (Source::Server(ServerLog::open(server).await?), None),
        (None, None) => {
            let dir = data_dir(args.data_dir.clone());
            (Source::Store(open_store(&dir)?), Some(dir))
        }
    };
    let verifier = trusted_key(args, &source, dir.as_deref())?;
    match (args.sample, &source) {
        (Some(n), Source::Store(store)) => sample(store, &verifier, n).await,
        _ => {
            let threads = if args.one_thread { 1 } else { 2 };
            full(
                &mut source,
                &verifier,
                args.checkpoint.as_deref(),
                args.strict,
                threads,
            )
            .await
        }
    }
}

/// A store that holds values sealgate never writes (an entry's bytes stored as a
/// number) was changed behind sealgate's back, and an export cut in the middle of a
/// line lost its end: that is tampering (exit 1), not a failure to check (exit 2).
fn corrupt_is_tampering(
    outcome: anyhow::Result<Result<Value, Tamper>>,
) -> anyhow::Result<Result<Value, Tamper>> {
    match outcome {
        Err(e) => match (
            e.downcast_ref::<sealgate_store::StoreError>(),
            e.downcast_ref::<Tamper>(),
        ) {
            (Some(sealgate_store::StoreError::Corrupt(what)), _) => Ok(Err(Tamper(what.clone()))),
            (_, Some(t)) => Ok(Err(t.clone())),
            _ => Err(e),
        },
        ok => ok,
    }
}

/// A running server's log, read through its tlog-tiles view: the latest checkpoint
/// first, then the entry bundles up to its size, checked as they arrive. Leaf hashes are
/// computed here, never taken from the server.
struct ServerLog {
    /// Taken by the fetcher of the entry bundles when the check starts.
    conn: Option<crate::client::Connection>,
    token: String,
    /// The latest checkpoint, not yet verified: the check opens it with the trusted key.
    note: String,
    size: u64,
}

impl ServerLog {
    async fn open(server: &str) -> anyhow::Result<ServerLog> {
        use hyper::Method;
        let token = std::env::var("SEALGATE_TOKEN")
            .context("--server needs an auditor token in SEALGATE_TOKEN")?;
        let mut conn = crate::client::Connection::open(&crate::client::address(server)?).await?;
        let (status, body) = conn
            .send(
                Method::GET,
                "/v1/ledger/tlog/checkpoint",
                Some(&token),
                None,
            )
            .await?;
        if status != 200 {
            return Err(ServerFailed(format!(
                "GET /v1/ledger/tlog/checkpoint: the server answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(1024)])
            ))
            .into());
        }
        let note = String::from_utf8(body.to_vec()).context("checkpoint is not UTF-8")?;
        let size: u64 = note
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .context("checkpoint without a tree size")?;
        Ok(ServerLog {
            conn: Some(conn),
            token,
            note,
            size,
        })
    }

    /// Fetches the entry bundles in order and hands each entry to `audit` until it
    /// finds a problem. A task fetches (and unpacks) the next bundles while this one is
    /// checked, so the server's time and the check's overlap.
    async fn check(&mut self, audit: &mut Audit) -> anyhow::Result<Result<(), Tamper>> {
        let mut conn = self
            .conn
            .take()
            .context("the server's log was already read")?;
        let (token, size) = (self.token.clone(), self.size);
        let (sender, mut fetched) = tokio::sync::mpsc::channel(2);
        // Stops when a fetch fails (after handing the failure over) or when the check
        // stops listening.
        tokio::spawn(async move {
            let mut start = 0;
            while start < size {
                let width = (size - start).min(256) as u16;
                let bundle = fetch_bundle(&mut conn, &token, start / 256, width).await;
                let failed = bundle.is_err();
                if sender.send(bundle).await.is_err() || failed {
                    break;
                }
                start += u64::from(width);
            }
        });
        let mut index = 0;
        while index < self.size {
            let (path, width, body) = fetched
                .recv()
                .await
                .context("the entry bundle fetcher stopped")??;
            // The checkpoint, verified already, says how many entries each bundle
            // holds: a bundle that says otherwise contradicts what the log signed.
            let bundle = match sealgate_ledger::tiles::decode_bundle(&body) {
                Ok(bundle) if bundle.len() == usize::from(width) => bundle,
                Ok(bundle) => {
                    return Ok(Err(Tamper(format!(
                        "{path}: {} entries, where the signed checkpoint's size {} needs {width}",
                        bundle.len(),
                        self.size
                    ))))
                }
                Err(e) => return Ok(Err(Tamper(format!("{path}: not an entry bundle ({e})")))),
            };
            // Hashing and checking 256 entries is CPU work: off the runtime's thread.
            let stop = tokio::task::block_in_place(|| {
                for bytes in bundle {
                    let leaf = leaf_hash(bytes);
                    if let Err(b) = audit.step(index, bytes, &leaf, leaf, None)? {
                        return Ok::<_, anyhow::Error>(Some(audit.report(b)));
                    }
                    index += 1;
                }
                Ok(None)
            })?;
            if let Some(t) = stop {
                return Ok(Err(t));
            }
        }
        Ok(Ok(()))
    }
}

/// Entry bundle `n` of `width` entries: its path, its width and its bytes.
async fn fetch_bundle(
    conn: &mut crate::client::Connection,
    token: &str,
    n: u64,
    width: u16,
) -> anyhow::Result<(String, u16, bytes::Bytes)> {
    let path = sealgate_ledger::Tile::entries(n, width)?.path();
    let (status, body) = conn
        .send(
            hyper::Method::GET,
            &format!("/v1/ledger/tlog/{path}"),
            Some(token),
            None,
        )
        .await?;
    if status != 200 {
        return Err(ServerFailed(format!("GET {path}: the server answered {status}")).into());
    }
    Ok((path, width, body))
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
                (Source::Export(file), _) => file.log_key.clone(),
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
    text.trim().parse::<NoteVerifier>().map_err(|e| {
        let flag = if args.key_file.is_some() {
            "--key-file"
        } else {
            "--key"
        };
        anyhow::anyhow!("{flag}: not a C2SP verifier key: {e}")
    })
}

fn derive_key(dir: &Path) -> Option<String> {
    let key = sealgate_server::keystore::load_key(&dir.join("log-key.pem")).ok()?;
    let store = open_store(dir).ok()?;
    let origin = latest_origin(store)?;
    NoteSigner::new(origin, key)
        .ok()
        .map(|s| s.verifier().to_string())
}

/// The origin named by the ledger's checkpoints (the first line of a note).
fn latest_origin(store: SqliteStore) -> Option<String> {
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
    source: &mut Source,
    verifier: &NoteVerifier,
    trusted: Option<&Path>,
    strict: bool,
    threads: usize,
) -> anyhow::Result<Result<Value, Tamper>> {
    let trusted = match trusted {
        Some(path) => {
            let note = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            match Checkpoint::open(&note, verifier.name(), std::slice::from_ref(verifier)) {
                Ok((cp, _)) => Some(cp),
                Err(e) => bail!(
                    "--checkpoint {}: does not verify with the trusted key: {e}",
                    path.display()
                ),
            }
        }
        None => None,
    };
    match source {
        // SQLite calls block: the check leaves the runtime's worker thread for its run.
        Source::Store(store) => tokio::task::block_in_place(|| {
            let scan = store.scan()?;
            let notes: Vec<String> = scan.checkpoints()?.into_iter().map(|c| c.note).collect();
            let size = scan.tree_size()?;
            match Audit::new(&notes, verifier, trusted, size, strict) {
                Ok(audit) if threads > 1 => {
                    // A snapshot of its own for the reader thread: entries below the
                    // size read here never change.
                    let reader = store.scan()?;
                    audit.run_pipelined(Some(&scan), move |each| {
                        reader.entries(0..size, each)?;
                        Ok(())
                    })
                }
                Ok(audit) => audit.run_scan(&scan),
                Err(t) => Ok(Err(t)),
            }
        }),
        Source::Export(file) => {
            match Audit::new(&file.checkpoints, verifier, trusted, file.tree_size, strict) {
                Ok(audit) if threads > 1 => tokio::task::block_in_place(|| {
                    audit.run_pipelined(None, move |each| {
                        file.entries(|i, bytes, leaf| each(i, bytes, leaf))
                    })
                }),
                Ok(audit) => tokio::task::block_in_place(|| audit.run_export(file)),
                Err(t) => Ok(Err(t)),
            }
        }
        Source::Server(log) => {
            let notes = std::slice::from_ref(&log.note);
            let mut audit = match Audit::new(notes, verifier, trusted, log.size, strict) {
                Ok(audit) => audit,
                Err(t) => return Ok(Err(t)),
            };
            if let Err(t) = log.check(&mut audit).await? {
                return Ok(Err(t));
            }
            Ok(audit.finish(None)?)
        }
    }
}

/// What a source stores beside the entries: tree nodes, and the tables the server
/// decides by.
trait Stored {
    /// Hands the stored nodes on `level` with index in `range` to `each`, in index order.
    fn level(
        &self,
        level: u8,
        range: Range<u64>,
        each: &mut dyn FnMut(u64, &[u8]),
    ) -> anyhow::Result<()>;

    /// Hands the rows of `table` to `each` as [`LedgerScan::deciding_rows`] does;
    /// `false` when the source keeps no such table.
    fn deciding_rows(
        &self,
        _table: DecidingTable,
        _by_index: bool,
        _each: &mut dyn FnMut(u64, DecidingRow<'_>) -> ControlFlow<()>,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Hands every stored policy bundle to `each` as `(version, bundle bytes)`; `false`
    /// when the source keeps none.
    fn policy_bundles(&self, _each: &mut dyn FnMut(&str, &[u8])) -> Result<bool, StoreError> {
        Ok(false)
    }
}

impl Stored for LedgerScan {
    fn level(
        &self,
        level: u8,
        range: Range<u64>,
        each: &mut dyn FnMut(u64, &[u8]),
    ) -> anyhow::Result<()> {
        Ok(self.nodes(level, range, each)?)
    }

    fn deciding_rows(
        &self,
        table: DecidingTable,
        by_index: bool,
        each: &mut dyn FnMut(u64, DecidingRow<'_>) -> ControlFlow<()>,
    ) -> Result<bool, StoreError> {
        LedgerScan::deciding_rows(self, table, by_index, each)?;
        Ok(true)
    }

    fn policy_bundles(&self, each: &mut dyn FnMut(&str, &[u8])) -> Result<bool, StoreError> {
        LedgerScan::policy_bundles(self, each)?;
        Ok(true)
    }
}

/// Entries handed from the reader thread to the checker: indices, bytes and stored
/// leaf hashes end to end.
#[derive(Default)]
struct Batch {
    index: Vec<u64>,
    bytes: Vec<u8>,
    /// Where each entry's bytes end in `bytes`, and its stored leaf hash in `stored`.
    ends: Vec<(usize, usize)>,
    stored: Vec<u8>,
}

/// Entries per [`Batch`]: about a megabyte of fill_ledger's decisions.
const BATCH: usize = 1024;

impl Batch {
    fn len(&self) -> usize {
        self.index.len()
    }

    fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn push(&mut self, index: u64, canonical: &[u8], stored_leaf: &[u8]) {
        self.index.push(index);
        self.bytes.extend_from_slice(canonical);
        self.stored.extend_from_slice(stored_leaf);
        self.ends.push((self.bytes.len(), self.stored.len()));
    }

    /// `(index, canonical bytes, stored leaf hash)` per entry.
    fn entries(&self) -> impl Iterator<Item = (u64, &[u8], &[u8])> + '_ {
        let starts = std::iter::once((0, 0)).chain(self.ends.iter().copied());
        self.index
            .iter()
            .zip(starts.zip(&self.ends))
            .map(|(index, ((b0, s0), &(b1, s1)))| {
                (*index, &self.bytes[b0..b1], &self.stored[s0..s1])
            })
    }

    fn clear(&mut self) {
        self.index.clear();
        self.bytes.clear();
        self.ends.clear();
        self.stored.clear();
    }
}

/// The full check, fed entries in index order: each leaf hash is recomputed and
/// compared, the tree is rebuilt and compared with every checkpoint as it reaches
/// that checkpoint's size and, per chunk of entries, with the stored tree nodes (when
/// the source has them). Each entry's cross-reference claim is read on the way and
/// the claims are resolved at the end; the report is the one an entry-by-entry check
/// gives, which settles each chunk's cross-references after its structure, so a
/// structural break is reported at its own index first.
struct Audit {
    /// Entries the source says it has.
    size: u64,
    strict: bool,
    /// The trusted key, named in the summary.
    key: String,
    /// Checkpoints by size, each with the label a report names it by.
    checkpoints: Vec<(u64, Hash, String)>,
    /// The next checkpoint to reach, and its size (`u64::MAX` when none is left).
    next: usize,
    next_size: u64,
    /// Size of the last checkpoint that matched: a mismatch lies beyond it.
    last_good: u64,
    frontier: Frontier,
    /// First entry of the current chunk.
    chunk_start: u64,
    /// Interior nodes completed in this chunk, per level from 1: the first one's index
    /// and the hashes in index order.
    nodes: Vec<(u64, Vec<Hash>)>,
    /// A checkpoint that did not match, reported once the chunk's nodes are compared.
    checkpoint_error: Option<Tamper>,
    /// The cross-reference claims read so far.
    refs: CrossRefs,
    /// Whether [`Audit::entry`] reads the claims into `refs`; when another thread
    /// reads them, they are handed over before anything is reported.
    reads_refs: bool,
    /// Threads the cross-references are finally checked on.
    threads: usize,
}

/// A structural break (a changed, missing or reordered entry, a checkpoint or a stored
/// node that does not match), reported by [`Audit::report`] once the cross-references
/// of the entries before its chunk are settled.
struct Break(Tamper);

impl Audit {
    /// Opens the checkpoints (any bad signature is tampering) and checks that none
    /// covers more than `size` entries.
    fn new(
        notes: &[String],
        verifier: &NoteVerifier,
        trusted: Option<Checkpoint>,
        size: u64,
        strict: bool,
    ) -> Result<Audit, Tamper> {
        let stored = open_checkpoints(notes, verifier)?;
        let stored_count = stored.len();
        let mut checkpoints: Vec<(u64, Hash, String)> = stored
            .into_iter()
            .chain(trusted)
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
        checkpoints.sort_by_key(|(s, _, _)| *s);
        if let Some((s, _, label)) = checkpoints.iter().rev().find(|(s, _, _)| *s > size) {
            return Err(Tamper(format!(
                "{label} covers {s} entries but the ledger has only {size}: entries {size}..{s} were removed"
            )));
        }
        // Checkpoints of the empty tree are checked now; the walk starts after them.
        let mut next = 0;
        while let Some((0, root, label)) = checkpoints.get(next) {
            if *root != EMPTY_ROOT {
                return Err(Tamper(format!(
                    "{label} (size 0) does not match the rebuilt tree: its root is not the empty tree's"
                )));
            }
            next += 1;
        }
        Ok(Audit {
            size,
            strict,
            key: verifier.to_string(),
            next_size: checkpoints.get(next).map_or(u64::MAX, |c| c.0),
            checkpoints,
            next,
            last_good: 0,
            frontier: Frontier::new(),
            chunk_start: 0,
            nodes: Vec::new(),
            checkpoint_error: None,
            refs: CrossRefs::with_room(size),
            reads_refs: true,
            threads: 1,
        })
    }

    /// Checks the entries `feed` hands over, in order, until one is bad; then finishes.
    fn run_feed(
        mut self,
        nodes: Option<&dyn Stored>,
        feed: impl FnOnce(&mut dyn FnMut(u64, &[u8], &[u8]) -> ControlFlow<()>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Result<Value, Tamper>> {
        let mut outcome = Ok(Ok(()));
        feed(&mut |index, canonical, stored_leaf| {
            let leaf = leaf_hash(canonical);
            match self.step(index, canonical, stored_leaf, leaf, nodes) {
                Ok(Ok(())) => ControlFlow::Continue(()),
                stop => {
                    outcome = stop;
                    ControlFlow::Break(())
                }
            }
        })?;
        if let Err(b) = outcome? {
            return Ok(Err(self.report(b)));
        }
        self.finish(nodes)
    }

    /// Streams the entries out of a SQLite snapshot, on this thread alone.
    fn run_scan(self, scan: &LedgerScan) -> anyhow::Result<Result<Value, Tamper>> {
        let size = self.size;
        self.run_feed(Some(scan), |each| {
            scan.entries(0..size, each)?;
            Ok(())
        })
    }

    /// Runs `feed` on a second thread that also reads the entries' cross-reference
    /// claims, while this thread hashes them and rebuilds the tree. The two halves cost
    /// about the same, so each thread is busy most of the run; the claims come back
    /// when the reader is done, before anything is reported.
    fn run_pipelined(
        mut self,
        nodes: Option<&dyn Stored>,
        feed: impl FnOnce(&mut dyn FnMut(u64, &[u8], &[u8]) -> ControlFlow<()>) -> anyhow::Result<()>
            + Send,
    ) -> anyhow::Result<Result<Value, Tamper>> {
        let (size, strict) = (self.size, self.strict);
        let mut refs = std::mem::take(&mut self.refs);
        self.reads_refs = false;
        self.threads = 2;
        let (full, filled) = mpsc::sync_channel::<Batch>(2);
        let (spent, empties) = mpsc::channel::<Batch>();
        std::thread::scope(|threads| {
            let producer = threads.spawn(move || {
                let mut batch = Batch::default();
                // Claims are read from entry 0 on while the indices run on, as on one
                // thread: at a gap, a repeat or an entry beyond the size the checker
                // finds a break, and no claim from there on may count.
                let mut next_claim = 0;
                let fed = feed(&mut |index, canonical, stored_leaf| {
                    if index == next_claim && index < size {
                        refs.read(index, canonical, strict);
                        next_claim += 1;
                    }
                    batch.push(index, canonical, stored_leaf);
                    if batch.len() < BATCH {
                        return ControlFlow::Continue(());
                    }
                    let next = empties.try_recv().unwrap_or_default();
                    match full.send(std::mem::replace(&mut batch, next)) {
                        Ok(()) => ControlFlow::Continue(()),
                        // The checker stopped: it found a problem.
                        Err(_) => ControlFlow::Break(()),
                    }
                });
                // The entries read before a failed read are checked too, as on one
                // thread: a break among them is reported before the failure.
                if !batch.is_empty() {
                    // Refused only when the checker has already stopped.
                    let _ = full.send(batch);
                }
                (refs, fed)
            });
            let mut outcome = Ok(Ok(()));
            'batches: for mut batch in filled.iter() {
                for (index, canonical, stored_leaf) in batch.entries() {
                    let leaf = leaf_hash(canonical);
                    match self.step(index, canonical, stored_leaf, leaf, nodes) {
                        Ok(Ok(())) => {}
                        stop => {
                            outcome = stop;
                            break 'batches;
                        }
                    }
                }
                batch.clear();
                // Refused only when the reader has finished.
                let _ = spent.send(batch);
            }
            drop(filled);
            let (refs, fed) = producer
                .join()
                .map_err(|_| anyhow::anyhow!("the ledger reader thread panicked"))?;
            let outcome = outcome?;
            // The reader read every entry the checker saw, and more: the claims of the
            // entries before a break are all there.
            self.refs = refs;
            // A break among the entries read comes first: one thread stops there and
            // never meets a read that fails further on.
            if let Err(b) = outcome {
                return Ok(Err(self.report(b)));
            }
            fed?;
            self.finish(nodes)
        })
    }

    /// Streams the entries of an export file.
    fn run_export(self, file: &mut ExportFile) -> anyhow::Result<Result<Value, Tamper>> {
        self.run_feed(None, |each| {
            file.entries(|i, bytes, leaf| each(i, bytes, leaf))
        })
    }

    /// Walks entries held in memory.
    #[cfg(test)]
    fn run_entries(
        self,
        entries: &[sealgate_store::StoredEntry],
        nodes: Option<&dyn Stored>,
    ) -> anyhow::Result<Result<Value, Tamper>> {
        self.run_feed(nodes, |each| {
            for e in entries {
                if each(e.index, &e.canonical, &e.leaf_hash).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    /// One entry whose bytes hash to `leaf`, and the end of its chunk when it is the
    /// last of one.
    fn step(
        &mut self,
        index: u64,
        canonical: &[u8],
        stored_leaf: &[u8],
        leaf: Hash,
        nodes: Option<&dyn Stored>,
    ) -> anyhow::Result<Result<(), Break>> {
        match self.entry(index, canonical, stored_leaf, leaf) {
            Err(t) => Ok(Err(Break(t))),
            Ok(true) if self.frontier.size() < self.chunk_end() => Ok(Ok(())),
            // The chunk is complete, or a checkpoint did not match and it ends here.
            Ok(_) => self.end_chunk(nodes),
        }
    }

    fn chunk_end(&self) -> u64 {
        (self.chunk_start + CHUNK).min(self.size)
    }

    /// Checks the next entry. `Ok(false)`: a checkpoint did not match, so the chunk
    /// ends here and its stored nodes get a chance to pinpoint the break.
    fn entry(
        &mut self,
        index: u64,
        canonical: &[u8],
        stored_leaf: &[u8],
        recomputed: Hash,
    ) -> Result<bool, Tamper> {
        let expected = self.frontier.size();
        if expected >= self.size {
            return Err(Tamper(format!(
                "entry {index} is beyond the {} entries the ledger declares: an entry was appended",
                self.size
            )));
        }
        if index != expected {
            return Err(Tamper(format!(
                "entry {expected} is missing (found index {index} in its place)"
            )));
        }
        if recomputed != stored_leaf {
            return Err(Tamper(format!(
                "entry {expected}: its bytes hash to {} but the stored leaf hash is {}: the entry was changed",
                B64.encode(recomputed),
                B64.encode(stored_leaf)
            )));
        }
        let nodes = &mut self.nodes;
        self.frontier.append_with(recomputed, |id, h| {
            if id.level > 0 {
                let at = usize::from(id.level - 1);
                if nodes.len() <= at {
                    nodes.resize_with(at + 1, Default::default);
                }
                let (first, hashes) = &mut nodes[at];
                if hashes.is_empty() {
                    *first = id.index;
                }
                hashes.push(*h);
            }
        });
        if self.frontier.size() == self.next_size {
            let root = self.frontier.root();
            while let Some((s, expected_root, label)) = self.checkpoints.get(self.next) {
                if *s != self.frontier.size() {
                    break;
                }
                if root != *expected_root {
                    let last_good = self.last_good;
                    // Another checkpoint of this size with another root: the log signed
                    // two trees of one size, whichever of them the entries give.
                    let forked = self
                        .checkpoints
                        .iter()
                        .any(|(size, root, _)| size == s && root != expected_root);
                    self.checkpoint_error = Some(Tamper(if !forked {
                        format!(
                            "{label} (size {s}) does not match the rebuilt tree: an entry in {last_good}..{s} was changed, reordered, removed or re-appended (first bad index {last_good} or later)"
                        )
                    } else {
                        format!(
                            "{label} (size {s}) signs another root than the rebuilt tree, while another checkpoint of the same size signs another: the log signed two trees of one size, or a checkpoint was replaced"
                        )
                    }));
                    return Ok(false);
                }
                self.last_good = *s;
                self.next += 1;
            }
            self.next_size = self.checkpoints.get(self.next).map_or(u64::MAX, |c| c.0);
        }
        if self.reads_refs {
            self.refs.read(index, canonical, self.strict);
        }
        Ok(true)
    }

    /// Compares the chunk's nodes with the stored ones, then reports a checkpoint
    /// mismatch (a stored node pinpoints a break better).
    fn end_chunk(&mut self, stored: Option<&dyn Stored>) -> anyhow::Result<Result<(), Break>> {
        if let Some(stored) = stored {
            if let Some(t) = self.compare_nodes(stored)? {
                return Ok(Err(Break(t)));
            }
        }
        if let Some(t) = self.checkpoint_error.take() {
            return Ok(Err(Break(t)));
        }
        for (_, hashes) in &mut self.nodes {
            hashes.clear();
        }
        self.chunk_start = self.frontier.size();
        Ok(Ok(()))
    }

    /// The stored node that differs from the rebuilt one (or is missing) nearest the
    /// edit that made it differ: an edit changes every node above it, so among the
    /// nodes that differ while their children agree (or that sit on the leaves), the
    /// one covering the lowest entries.
    fn compare_nodes(&self, stored: &dyn Stored) -> anyhow::Result<Option<Tamper>> {
        // Per level from 1, ascending: the nodes that differ, and whether each is missing.
        let mut differ: Vec<Vec<(u64, bool)>> = Vec::with_capacity(self.nodes.len());
        for (at, (first, rebuilt)) in self.nodes.iter().enumerate() {
            let mut found = Vec::new();
            if !rebuilt.is_empty() {
                let end = first + rebuilt.len() as u64;
                let mut next = *first;
                stored.level(at as u8 + 1, *first..end, &mut |index, hash| {
                    // Indices skipped over have no stored node.
                    found.extend((next..index.min(end)).map(|i| (i, true)));
                    if index < end && hash != rebuilt[(index - first) as usize] {
                        found.push((index, false));
                    }
                    next = next.max(index + 1);
                })?;
                found.extend((next..end).map(|i| (i, true)));
            }
            differ.push(found);
        }
        let start = |id: &NodeId| id.leaves().map_or(u64::MAX, |l| l.start);
        let mut nearest: Option<(NodeId, bool)> = None;
        for (at, found) in differ.iter().enumerate() {
            let below = at.checked_sub(1).map(|b| &differ[b]);
            let child_differs = |index: u64| {
                below.is_some_and(|b| {
                    let at = |i: u64| b.binary_search_by_key(&i, |&(n, _)| n).is_ok();
                    at(2 * index) || at(2 * index + 1)
                })
            };
            // Ascending: the first such node of a level covers its lowest entries.
            if let Some(&(index, missing)) = found.iter().find(|&&(i, _)| !child_differs(i)) {
                let id = NodeId::new(at as u8 + 1, index);
                if nearest.as_ref().is_none_or(|(n, _)| start(&id) < start(n)) {
                    nearest = Some((id, missing));
                }
            }
        }
        Ok(nearest.map(|(id, missing)| {
            let leaves = id.leaves().unwrap_or(0..0);
            let (a, b) = (leaves.start, leaves.end);
            Tamper(if missing {
                format!("stored tree node {id} (entries {a}..{b}) is missing: rows were deleted from tree_nodes")
            } else if id.level == 1 {
                format!(
                    "entries {a}..{b} do not match stored tree node {id}: an entry in that range was reordered or replaced (first bad index {a} or later)"
                )
            } else {
                // Its children match what the entries give, so the edit is at this node.
                format!(
                    "stored tree node {id} (entries {a}..{b}) differs from the hash of the stored nodes below it, which match the entries: the node was edited, or the entries were changed together with every node below it (first bad index {a} or later)"
                )
            })
        }))
    }

    /// After the last entry: all there, or which are missing; the cross-references;
    /// the deciding tables `stored` keeps against what the entries imply; then the
    /// summary.
    fn finish(self, stored: Option<&dyn Stored>) -> anyhow::Result<Result<Value, Tamper>> {
        let present = self.frontier.size();
        if present < self.size {
            return Ok(Err(self.structural(Tamper(format!(
                "entries {present}..{} are missing: the ledger declares {} but holds {present}",
                self.size, self.size
            )))));
        }
        let totals = match self.refs.check_on(u64::MAX, self.threads) {
            Ok(totals) => totals,
            Err(t) => return Ok(Err(t)),
        };
        let tables = match stored {
            Some(stored) => match tables::compare(&self.refs, stored, self.size)? {
                Some(Err(t)) => return Ok(Err(t)),
                Some(Ok(compared)) => Some(compared),
                None => None,
            },
            None => None,
        };
        // Entries beyond the last signed checkpoint are consistent but not yet vouched
        // for (the next checkpoint will cover them); a ledger no checkpoint covers at
        // all could have been written by anyone.
        let anchored = self.checkpoints.iter().map(|c| c.0).max().unwrap_or(0);
        if self.size > 0 && anchored == 0 {
            return Ok(Err(Tamper(format!(
                "no signed checkpoint covers any of the {} entries: nothing vouches for them \
                 (checkpoints removed, an export without them, or a server stopped before its first \
                 checkpoint: starting it once signs one; or pass --checkpoint with one you hold)",
                self.size
            ))));
        }
        let mut summary = json!({
            "ok": true,
            "entries": self.size,
            "anchored_entries": anchored,
            "unanchored_entries": self.size - anchored,
            "root": B64.encode(self.frontier.root()),
            "checkpoints_verified": self.checkpoints.len(),
            "seals": totals.seals,
            "redemptions": totals.redemptions,
            "key": self.key,
        });
        if let Some(compared) = tables {
            summary["tables"] = json!(compared);
        }
        Ok(Ok(summary))
    }

    /// A structural break `t` in the current chunk, unless the cross-references of
    /// the chunks before it already fail: entry by entry, those were checked first.
    fn structural(&self, t: Tamper) -> Tamper {
        self.refs
            .check_on(self.chunk_start, self.threads)
            .err()
            .unwrap_or(t)
    }

    /// What to report for a break the walk stopped at.
    fn report(&self, Break(t): Break) -> Tamper {
        self.structural(t)
    }
}

async fn sample(
    store: &SqliteStore,
    verifier: &NoteVerifier,
    n: u64,
) -> anyhow::Result<Result<Value, Tamper>> {
    let notes: Vec<String> = store
        .checkpoints()
        .await?
        .into_iter()
        .map(|c| c.note)
        .collect();
    let checkpoints = match open_checkpoints(&notes, verifier) {
        Ok(c) => c,
        Err(t) => return Ok(Err(t)),
    };
    let entries = store.tree_size().await?;
    let latest = checkpoints.iter().max_by_key(|c| c.size);
    let Some(latest) = latest.filter(|c| c.size > 0 || entries == 0) else {
        // As in a full check: entries no signed checkpoint covers could be anyone's.
        return Ok(Err(Tamper(format!(
            "no signed checkpoint covers any of the {entries} entries: nothing vouches for them \
             (a server stopped before its first checkpoint signs one when started again)"
        ))));
    };
    let size = latest.size;
    if size > entries {
        return Ok(Err(Tamper(format!(
            "latest checkpoint covers {size} entries but the ledger has fewer"
        ))));
    }
    let mut rng = rand::thread_rng();
    let mut checked = 0;
    // Distinct entries: `--sample N` checks N different ones (all of them when N is at
    // least the checkpoint's size).
    let picks = usize::try_from(n.min(size)).context("--sample is larger than memory")?;
    let size_usize = usize::try_from(size).context("the ledger is larger than memory")?;
    for index in rand::seq::index::sample(&mut rng, size_usize, picks) {
        // Missing or unreadable data is a damaged ledger; a store that cannot be read
        // right now (busy, I/O) is a failure to check, not tampering.
        if let Some(what) = check_entry(store, index as u64, size, &latest.root).await? {
            return Ok(Err(Tamper(what)));
        }
        checked += 1;
    }
    Ok(Ok(
        json!({"ok": true, "sampled": checked, "tree_size": size, "root": B64.encode(latest.root),
               "anchored_entries": size, "unanchored_entries": entries - size}),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sealgate_store::StoredEntry;

    use super::*;

    const ORIGIN: &str = "test.sealgate.local/log";

    fn signer() -> NoteSigner {
        NoteSigner::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[1; 32])).expect("signer")
    }

    fn note(size: u64, root: Hash) -> String {
        Checkpoint::new(ORIGIN, size, root)
            .sign(&signer())
            .expect("sign")
    }

    fn entries(n: u64) -> Vec<StoredEntry> {
        (0..n)
            .map(|index| {
                let canonical = format!(
                    "{{\"key_id\":\"k{index}\",\"kind\":\"key_rotated\",\"public_key\":\"AAAA\",\"purpose\":\"seal\",\"server_time\":\"t\"}}"
                )
                .into_bytes();
                StoredEntry {
                    index,
                    leaf_hash: leaf_hash(&canonical),
                    canonical,
                }
            })
            .collect()
    }

    /// The tree over `entries`, with every interior node as a store keeps them.
    fn tree(entries: &[StoredEntry]) -> (Hash, Nodes) {
        let mut frontier = Frontier::new();
        let mut nodes = Nodes::default();
        for e in entries {
            frontier.append_with(e.leaf_hash, |id, h| {
                if id.level > 0 {
                    nodes.0.insert((id.level, id.index), *h);
                }
            });
        }
        (frontier.root(), nodes)
    }

    #[derive(Default)]
    struct Nodes(HashMap<(u8, u64), Hash>);

    impl Stored for Nodes {
        fn level(
            &self,
            level: u8,
            range: Range<u64>,
            each: &mut dyn FnMut(u64, &[u8]),
        ) -> anyhow::Result<()> {
            for index in range {
                if let Some(h) = self.0.get(&(level, index)) {
                    each(index, h);
                }
            }
            Ok(())
        }
    }

    fn audit(
        entries: &[StoredEntry],
        notes: &[String],
        nodes: Option<&Nodes>,
    ) -> Result<Value, Tamper> {
        let verifier = signer().verifier();
        let audit = Audit::new(notes, &verifier, None, entries.len() as u64, false)?;
        let nodes = nodes.map(|n| n as &dyn Stored);
        audit
            .run_entries(entries, nodes)
            .expect("no storage errors")
    }

    #[test]
    fn an_untouched_ledger_verifies_across_chunks() {
        let all = entries(CHUNK + 5);
        let (root, nodes) = tree(&all);
        let (half, _) = tree(&all[..1000]);
        let summary = audit(
            &all,
            &[note(1000, half), note(CHUNK + 5, root)],
            Some(&nodes),
        )
        .expect("verifies");
        assert_eq!(summary["entries"], CHUNK + 5);
        assert_eq!(summary["checkpoints_verified"], 2);
        assert_eq!(summary["root"], B64.encode(root));
    }

    #[test]
    fn a_checkpoint_of_the_empty_tree_does_not_switch_off_the_others() {
        let all = entries(4);
        let (wrong_root, _) = tree(&entries(5));
        let t = audit(&all, &[note(0, EMPTY_ROOT), note(4, wrong_root)], None)
            .expect_err("the size-4 checkpoint is checked");
        assert!(
            t.0.contains("stored checkpoint #1 (size 4) does not match"),
            "{}",
            t.0
        );
        let t = audit(&all, &[note(0, [7; 32])], None).expect_err("a bad empty root");
        assert!(t.0.contains("(size 0)"), "{}", t.0);
    }

    #[test]
    fn two_checkpoints_of_one_size_with_two_roots_are_a_fork() {
        let all = entries(8);
        let (root, _) = tree(&all);
        let (other, _) = tree(&entries(9));
        let t = audit(&all, &[note(8, root), note(8, other)], None).expect_err("forked");
        assert!(
            t.0.contains("checkpoint #1 (size 8) signs another root")
                && t.0.contains("two trees of one size"),
            "{}",
            t.0
        );
        // The other order: the first checkpoint of the size is the one that differs.
        let t = audit(&all, &[note(8, other), note(8, root)], None).expect_err("forked");
        assert!(
            t.0.contains("checkpoint #0 (size 8) signs another root")
                && t.0.contains("two trees of one size"),
            "{}",
            t.0
        );
        // Both wrong, alike: not a fork, the entries differ from what was signed.
        let t = audit(&all, &[note(8, other), note(8, other)], None).expect_err("changed");
        assert!(t.0.contains("does not match the rebuilt tree"), "{}", t.0);
    }

    #[test]
    fn a_changed_entry_is_named() {
        let mut all = entries(10);
        all[6].canonical[3] ^= 1;
        let t = audit(&all, &[], None).expect_err("changed");
        assert!(t.0.starts_with("entry 6: its bytes hash to"), "{}", t.0);
    }

    #[test]
    fn a_swap_is_pinpointed_by_the_stored_nodes() {
        let mut all = entries(40);
        let (root, nodes) = tree(&all);
        let (root16, _) = tree(&all[..16]);
        let notes = [note(16, root16), note(40, root)];
        all.swap(33, 34);
        all[33].index = 33;
        all[34].index = 34;
        let t = audit(&all, &notes, Some(&nodes)).expect_err("swapped");
        assert_eq!(
            t.0,
            "entries 32..34 do not match stored tree node 1/16: an entry in that range was reordered or replaced (first bad index 32 or later)"
        );
        let t = audit(&all, &notes, None).expect_err("swapped");
        assert!(t.0.contains("first bad index 16 or later"), "{}", t.0);
    }

    #[test]
    fn a_missing_stored_node_is_reported() {
        let all = entries(8);
        let (root, mut nodes) = tree(&all);
        nodes.0.remove(&(2, 1));
        let t = audit(&all, &[note(8, root)], Some(&nodes)).expect_err("missing node");
        assert_eq!(
            t.0,
            "stored tree node 2/1 (entries 4..8) is missing: rows were deleted from tree_nodes"
        );
    }

    #[test]
    fn an_edited_stored_node_is_named_as_the_node() {
        let all = entries(8);
        let (root, mut nodes) = tree(&all);
        nodes.0.insert((2, 1), [7; 32]);
        let t = audit(&all, &[note(8, root)], Some(&nodes)).expect_err("edited node");
        assert!(
            t.0.starts_with(
                "stored tree node 2/1 (entries 4..8) differs from the hash of the stored nodes below it"
            ),
            "{}",
            t.0
        );
    }

    #[test]
    fn missing_and_removed_entries_are_reported() {
        let mut all = entries(6);
        all.remove(3);
        let t = audit(&all, &[], None).expect_err("gap");
        assert_eq!(t.0, "entry 3 is missing (found index 4 in its place)");
        let all = entries(6);
        let (root, _) = tree(&entries(7));
        let t = audit(&all, &[note(7, root)], None).expect_err("removed");
        assert!(t.0.contains("entries 6..7 were removed"), "{}", t.0);
    }

    /// A SQLite ledger of `n` entries with a checkpoint at the end.
    async fn ledger(dir: &Path, n: u64) -> SqliteStore {
        let store = SqliteStore::open(&dir.join("ledger.db")).expect("open");
        grow(&store, n).await;
        store
    }

    /// Appends `n` entries and a checkpoint of the new size.
    async fn grow(store: &SqliteStore, n: u64) {
        use sealgate_core::entry::{Entry, KeyRotation};
        use sealgate_store::{NewCheckpoint, NewEntry};
        let start = store.tree_size().await.expect("size");
        let batch = (start..start + n)
            .map(|i| {
                NewEntry::new(Entry::KeyRotated(KeyRotation {
                    server_time: "2026-01-01T00:00:00.000000Z".into(),
                    purpose: "seal".into(),
                    key_id: format!("k{i}"),
                    public_key: "AAAA".into(),
                }))
                .expect("entry")
            })
            .collect();
        store.append(batch).await.expect("append");
        let size = start + n;
        let root = sealgate_store::root(store, size).await.expect("root");
        store
            .put_checkpoint(&NewCheckpoint {
                tree_size: size,
                note: note(size, root),
                created_at: "2026-01-01T00:00:00.000000Z".into(),
            })
            .await
            .expect("checkpoint");
    }

    /// `scan` exported into `path`.
    fn write_export(scan: &LedgerScan, path: &Path) {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
        export::write(scan, None, &mut out).expect("export");
    }

    /// The full check of the export at `path`, on one thread; on two it must give the
    /// same answer.
    async fn check_export(path: &Path) -> anyhow::Result<Result<Value, Tamper>> {
        let check = |threads| async move {
            corrupt_is_tampering(
                async {
                    let mut source = Source::Export(ExportFile::open(path)?);
                    full(&mut source, &signer().verifier(), None, false, threads).await
                }
                .await,
            )
        };
        let one = check(1).await;
        let two = check(2).await;
        let text = |r: &anyhow::Result<Result<Value, Tamper>>| match r {
            Ok(outcome) => format!("{outcome:?}"),
            Err(e) => format!("error: {e:#}"),
        };
        assert_eq!(text(&one), text(&two), "one thread and two differ");
        one
    }

    fn lines(path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).expect("read");
        text.lines().map(str::to_owned).collect()
    }

    fn rewrite(path: &Path, lines: &[String]) {
        std::fs::write(
            path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .expect("write");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_export_holds_one_snapshot_even_while_the_ledger_grows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ledger(dir.path(), 300).await;
        let scan = store.scan().expect("scan");
        // The snapshot starts with the first read.
        assert_eq!(scan.tree_size().expect("size"), 300);
        // Entries and a checkpoint of 350 land while the export is being written.
        grow(&store, 50).await;
        let path = dir.path().join("export.jsonl");
        write_export(&scan, &path);
        let report = check_export(&path).await.expect("reads").expect("verifies");
        assert_eq!(report["entries"], 300);
        assert_eq!(report["checkpoints_verified"], 1);

        write_export(&store.scan().expect("scan"), &path);
        let report = check_export(&path).await.expect("reads").expect("verifies");
        assert_eq!(report["entries"], 350);
        assert_eq!(report["checkpoints_verified"], 2);
        // The header, the two checkpoints, then the entries.
        let lines = lines(&path);
        assert_eq!(lines.len(), 353);
        assert!(
            lines[0].contains("\"format\":\"sealgate-ledger-export/2\""),
            "{}",
            lines[0]
        );
        assert!(lines[1..3]
            .iter()
            .all(|l| l.contains("\"kind\":\"checkpoint\"")));
        assert!(lines[3].starts_with("{\"canonical\":"), "{}", lines[3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_1_export_with_its_checkpoints_last_still_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ledger(dir.path(), 40).await;
        grow(&store, 2).await;
        let path = dir.path().join("export.jsonl");
        write_export(&store.scan().expect("scan"), &path);
        let mut lines = lines(&path);
        lines[0] = lines[0].replace("export/2", "export/1");
        let checkpoints: Vec<String> = lines.drain(1..3).collect();
        lines.extend(checkpoints);
        rewrite(&path, &lines);
        let report = check_export(&path).await.expect("reads").expect("verifies");
        assert_eq!(report["entries"], 42);
        assert_eq!(report["checkpoints_verified"], 2);

        // The same layout under the current format's name is refused.
        lines[0] = lines[0].replace("export/1", "export/2");
        rewrite(&path, &lines);
        let err = check_export(&path).await.expect_err("refused");
        assert_eq!(
            err.to_string(),
            format!("{}:44: a checkpoint after the entries (format sealgate-ledger-export/2 lists them first)", path.display())
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_cut_from_or_added_to_an_export_are_tampering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ledger(dir.path(), 20).await;
        let path = dir.path().join("export.jsonl");
        write_export(&store.scan().expect("scan"), &path);
        let whole = lines(&path);

        rewrite(&path, &whole[..whole.len() - 1]);
        let t = check_export(&path).await.expect("reads").expect_err("cut");
        assert_eq!(
            t.0,
            "entries 19..20 are missing: the ledger declares 20 but holds 19"
        );

        // Cut in the middle of the last line: the same finding, not a malformed file.
        let bytes = whole.join("\n");
        std::fs::write(&path, &bytes[..bytes.len() - 30]).expect("write");
        let t = check_export(&path).await.expect("reads").expect_err("cut");
        assert!(
            t.0.ends_with("the export ends in the middle of a line: it was cut short"),
            "{}",
            t.0
        );
        // A last line without its line ending that is whole is still read.
        std::fs::write(&path, &bytes).expect("write");
        check_export(&path).await.expect("reads").expect("whole");
        // Cut inside the checkpoints, which are read when the file is opened.
        let second_line_end = bytes.find('\n').expect("a header line") + 1;
        let cut =
            second_line_end + (bytes[second_line_end..].find('\n').expect("a second line") / 2);
        std::fs::write(&path, &bytes[..cut]).expect("write");
        let t = check_export(&path).await.expect("reads").expect_err("cut");
        assert!(t.0.contains("cut short"), "{}", t.0);
        // Trailing blanks lost nothing: a malformed file (exit 2), not a cut one.
        std::fs::write(&path, format!("{bytes}\n  ")).expect("write");
        let e = check_export(&path).await.expect_err("malformed");
        assert!(e.to_string().contains("not an export line"), "{e}");

        for extra_index in [20, 25] {
            let mut grown = whole.clone();
            let extra =
                whole[whole.len() - 1].replace("\"index\":19", &format!("\"index\":{extra_index}"));
            grown.push(extra);
            rewrite(&path, &grown);
            let t = check_export(&path)
                .await
                .expect("reads")
                .expect_err("added");
            assert_eq!(
                t.0,
                format!("entry {extra_index} is beyond the 20 entries the ledger declares: an entry was appended")
            );
        }
    }

    /// An export line whose canonical bytes are `bytes` (its stored leaf hash kept).
    fn with_canonical(line: &str, bytes: &[u8]) -> String {
        let start = line.find("\"canonical\":\"").expect("canonical") + 13;
        let end = start + line[start..].find('"').expect("end of canonical");
        format!("{}{}{}", &line[..start], B64.encode(bytes), &line[end..])
    }

    /// The tampering the check of the export at `path` finds (on one thread and two).
    async fn tampering(path: &Path) -> Tamper {
        check_export(path)
            .await
            .expect("reads")
            .expect_err("tampering found")
    }

    /// Two threads read ahead of the check; what they read must not change the answer
    /// (check_export runs both and requires the same one).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_the_reader_meets_after_a_break_does_not_change_the_report() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ledger(dir.path(), CHUNK + 900).await;
        let path = dir.path().join("export.jsonl");
        write_export(&store.scan().expect("scan"), &path);
        let whole = lines(&path);
        let first = whole
            .iter()
            .position(|l| l.contains("\"kind\":\"entry\""))
            .expect("an entry line");
        let changed = |mut lines: Vec<String>, index: usize, bytes: &[u8]| {
            lines[first + index] = with_canonical(&lines[first + index], bytes);
            lines
        };
        let edited = changed(whole.clone(), 5, b"{\"kind\":\"key_rotated\"}");

        // Entry 5 edited, and a line further on that is not an export line, or the
        // file cut in the middle of its last line: the edit is what is found.
        let mut garbage = edited.clone();
        garbage.insert(first + 40, "xyz".into());
        rewrite(&path, &garbage);
        let t = tampering(&path).await;
        assert!(t.0.starts_with("entry 5: its bytes hash to"), "{}", t.0);
        let bytes = edited.join("\n");
        std::fs::write(&path, &bytes[..bytes.len() - 30]).expect("write");
        let t = tampering(&path).await;
        assert!(t.0.starts_with("entry 5: its bytes hash to"), "{}", t.0);

        // In the second chunk, the line for entry 9000 claims to be entry 100 and is
        // not a sealgate entry: the gap is found, not a problem of entry 100.
        let mut misplaced = whole.clone();
        misplaced[first + 9000] = with_canonical(
            &misplaced[first + 9000].replace("\"index\":9000,", "\"index\":100,"),
            b"{}",
        );
        rewrite(&path, &misplaced);
        let t = tampering(&path).await;
        assert_eq!(t.0, "entry 9000 is missing (found index 100 in its place)");
        // The line of entry 8191 repeated after it.
        let mut repeated = whole.clone();
        repeated.insert(first + 8192, whole[first + 8191].clone());
        rewrite(&path, &repeated);
        let t = tampering(&path).await;
        assert_eq!(t.0, "entry 8192 is missing (found index 8191 in its place)");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_that_is_not_a_well_formed_export_is_refused_with_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ledger(dir.path(), 3).await;
        let path = dir.path().join("export.jsonl");
        write_export(&store.scan().expect("scan"), &path);
        let whole = lines(&path);
        let at = |n: usize| format!("{}:{n}: ", path.display());
        let cases: Vec<(Vec<String>, String)> = vec![
            (vec![], format!("{}: empty file, not a sealgate ledger export", path.display())),
            (
                whole[1..].to_vec(),
                format!("{}not a sealgate ledger export (the first line must be its header, format sealgate-ledger-export/2)", at(1)),
            ),
            (
                [&whole[..3], &["{\"kind\":\"vote\"}".to_owned()][..]].concat(),
                format!("{}unknown line kind \"vote\"", at(4)),
            ),
            (
                [&whole[..2], &[whole[2].replace("\"canonical\":\"", "\"canonical\":\"*")]].concat(),
                format!("{}malformed entry line: canonical is not base64", at(3)),
            ),
            (
                [&whole[..2], &[whole[2].replace("\"index\":0,", "")]].concat(),
                format!("{}malformed entry line: no index", at(3)),
            ),
        ];
        for (lines, expected) in cases {
            rewrite(&path, &lines);
            let err = check_export(&path).await.expect_err("refused");
            assert_eq!(err.to_string(), expected);
        }
        rewrite(&path, &[whole[0].clone(), "{\"kind\":".into()]);
        let err = check_export(&path).await.expect_err("refused").to_string();
        assert!(
            err.starts_with(&format!("{}not an export line (", at(2))),
            "{err}"
        );
        // A line that would not end is not held in memory.
        let long = format!("{{\"kind\":\"entry\",\"x\":\"{}", "a".repeat(16 << 20));
        rewrite(&path, &[whole[0].clone(), long]);
        let err = check_export(&path).await.expect_err("refused").to_string();
        assert_eq!(
            err,
            format!("{}a line longer than 16 MiB: not an export line", at(2))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_thread_and_two_report_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut source = Source::Store(ledger(dir.path(), CHUNK + 808).await);
        let verifier = signer().verifier();
        let mut reports = Vec::new();
        for threads in [1, 2] {
            let report = full(&mut source, &verifier, None, false, threads).await;
            reports.push(report.expect("no storage errors").expect("verifies"));
        }
        assert_eq!(reports[0], reports[1]);
        assert_eq!(reports[0]["entries"], CHUNK + 808);

        // Entry 8500 edited with its leaf hash, as someone holding the file could: every
        // stored node above it differs now, and the one right above it names it.
        let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).expect("open");
        conn.execute_batch("DROP TRIGGER entries_no_update")
            .expect("drop trigger");
        let edited = b"{\"kind\":\"key_rotated\"}";
        conn.execute(
            "UPDATE entries SET canonical = ?1, leaf_hash = ?2 WHERE idx = 8500",
            rusqlite::params![&edited[..], &leaf_hash(edited)[..]],
        )
        .expect("update");
        for threads in [1, 2] {
            let report = full(&mut source, &verifier, None, false, threads).await;
            assert_eq!(
                report.expect("no storage errors").map_err(|t| t.0),
                Err("entries 8500..8502 do not match stored tree node 1/4250: an entry in that range was reordered or replaced (first bad index 8500 or later)".into()),
                "{threads} threads"
            );
        }
    }

    /// With two threads the claims are read on the reader thread and handed back at
    /// the end: a cross-reference problem in an earlier chunk is still reported before
    /// a structural break in a later one, as entry by entry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cross_references_before_a_break_are_reported_first_on_both_paths() {
        use sealgate_core::entry::{ApprovalEntry, Entry};
        use sealgate_store::NewEntry;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ledger(dir.path(), 100).await;
        // Entry 100 answers entry 7, a key rotation: no decision pending approval.
        let approval = Entry::ApprovalResolved(ApprovalEntry {
            server_time: "2026-01-01T00:00:00.000000Z".into(),
            decision_index: 7,
            decision_id: "dec-7".into(),
            approved: false,
            approver: "bo".into(),
            reason: "no".into(),
            seal: None,
        });
        let outcome = store
            .append(vec![NewEntry::new(approval).expect("entry")])
            .await
            .expect("append");
        assert!(
            matches!(
                outcome[..],
                [Ok(sealgate_store::Appended { index: 100, .. })]
            ),
            "{outcome:?}"
        );
        grow(&store, CHUNK + 400).await;
        let mut source = Source::Store(store);
        let verifier = signer().verifier();
        let unanswerable =
            "entry 100: answers entry 7, which is not an earlier decision pending approval";
        for threads in [1, 2] {
            let report = full(&mut source, &verifier, None, false, threads).await;
            assert_eq!(
                report.expect("no storage errors").map_err(|t| t.0),
                Err(unanswerable.into()),
                "{threads} threads"
            );
        }
        // A structural break in the second chunk does not hide it.
        let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).expect("open");
        conn.execute_batch("DROP TRIGGER entries_no_update")
            .expect("drop trigger");
        conn.execute(
            "UPDATE entries SET canonical = CAST('{}' AS BLOB) WHERE idx = 8500",
            [],
        )
        .expect("update");
        for threads in [1, 2] {
            let report = full(&mut source, &verifier, None, false, threads).await;
            assert_eq!(
                report.expect("no storage errors").map_err(|t| t.0),
                Err(unanswerable.into()),
                "{threads} threads"
            );
        }
        // A break in the approval's own chunk, at a lower index, comes first.
        conn.execute(
            "UPDATE entries SET canonical = CAST('{}' AS BLOB) WHERE idx = 50",
            [],
        )
        .expect("update");
        for threads in [1, 2] {
            let report = full(&mut source, &verifier, None, false, threads).await;
            let problem = report.expect("no storage errors").expect_err("tampered");
            assert!(
                problem.0.starts_with("entry 50: its bytes hash to"),
                "{threads} threads: {}",
                problem.0
            );
        }
    }
}
