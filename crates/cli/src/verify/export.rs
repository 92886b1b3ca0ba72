//! The ledger export file (`sealgate ledger export`, `sealgate verify --export`): JSON
//! lines holding a header, the signed checkpoints and every entry with its stored leaf
//! hash. Owns the format, writing it from one snapshot and reading it back as a stream,
//! so that checking an export takes memory for the checkpoints and the cross-references
//! but not for the entries. The checks belong to the caller.
//!
//! Format `sealgate-ledger-export/2`, one JSON object per line:
//!
//! ```text
//! {"format":"sealgate-ledger-export/2","kind":"header","log_key":"name+keyid+b64"|null,"tree_size":N}
//! {"kind":"checkpoint","note":"…","tree_size":S}            every stored checkpoint, in order
//! {"canonical":"b64","index":I,"kind":"entry","leaf_hash":"b64"}   entries 0..N, in order
//! ```
//!
//! A `/2` file is read in one pass, so it may come through a pipe. Version 1 (before
//! 2026-12-04) wrote the checkpoints after the entries, and from a later read than the
//! entries: it is still read, with a second pass, from a regular file only.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sealgate_ledger::Hash;
use sealgate_store_sqlite::LedgerScan;

use super::Tamper;
use serde_json::json;

const FORMAT: &str = "sealgate-ledger-export/2";
/// Checkpoints after the entries.
const FORMAT_V1: &str = "sealgate-ledger-export/1";
/// Longest line read. The server takes request bodies of at most 1 MiB, so no entry's
/// line comes near this; a longer one is refused rather than held in memory.
const MAX_LINE: u64 = 16 << 20;

/// Writes the export of `scan`'s snapshot into `path`. A regular file is written
/// atomically: into a temporary file beside it, synced, then renamed, so a failed
/// export leaves no partial file that would later read as a truncated (tampered)
/// ledger. Anything else (a pipe, a device) is written in place.
pub(super) fn write_file(
    scan: &LedgerScan,
    log_key: Option<&str>,
    path: &Path,
) -> anyhow::Result<()> {
    let context = || format!("writing the export to {}", path.display());
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(context)?;
        let mut out = std::io::BufWriter::new(file);
        return write(scan, log_key, &mut out).with_context(context);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).with_context(context)?;
    let mut out = std::io::BufWriter::new(tmp);
    write(scan, log_key, &mut out).with_context(context)?;
    let tmp = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(context)?;
    tmp.as_file().sync_all().with_context(context)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(context)?;
    Ok(())
}

/// Writes the export of `scan`'s snapshot: entries and checkpoints as of one moment,
/// so no checkpoint covers an entry the export lacks, even while a server appends.
pub(super) fn write(
    scan: &LedgerScan,
    log_key: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let size = scan.tree_size()?;
    writeln!(
        out,
        "{}",
        json!({"kind": "header", "format": FORMAT, "tree_size": size, "log_key": log_key})
    )?;
    for c in scan.checkpoints()? {
        writeln!(
            out,
            "{}",
            json!({"kind": "checkpoint", "tree_size": c.tree_size, "note": c.note})
        )?;
    }
    let (mut canonical, mut leaf) = (String::new(), String::new());
    let mut failed = None;
    scan.entries(0..size, |index, bytes, stored_leaf| {
        canonical.clear();
        leaf.clear();
        B64.encode_string(bytes, &mut canonical);
        B64.encode_string(stored_leaf, &mut leaf);
        // Base64 needs no JSON escaping; the members are in the order serde_json's
        // maps write them, as in the other lines.
        match writeln!(
            out,
            r#"{{"canonical":"{canonical}","index":{index},"kind":"entry","leaf_hash":"{leaf}"}}"#
        ) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    out.flush()?;
    Ok(())
}

/// One line of an export, members borrowed where they need no unescaping.
#[derive(serde::Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    format: Option<Cow<'a, str>>,
    #[serde(borrow)]
    log_key: Option<Cow<'a, str>>,
    tree_size: Option<u64>,
    note: Option<String>,
    index: Option<u64>,
    #[serde(borrow)]
    canonical: Option<Cow<'a, str>>,
    #[serde(borrow)]
    leaf_hash: Option<Cow<'a, str>>,
}

/// An export opened for checking: its header and checkpoints are read; the entries are
/// streamed by [`ExportFile::entries`].
pub(super) struct ExportFile {
    /// Positioned at the first entry line of a `/2` file (still in its buffer), after
    /// the header of a `/1` file's second pass.
    lines: Lines,
    /// The entries the header declares.
    pub(super) tree_size: u64,
    /// The log's verifier key as the exporter found it (trusted only without `--key`).
    pub(super) log_key: Option<String>,
    /// The checkpoint notes, in the order they were stored.
    pub(super) checkpoints: Vec<String>,
    checkpoints_first: bool,
}

impl ExportFile {
    /// Reads the header and the checkpoints: up to the first entry in the current
    /// format, the whole file in version 1.
    pub(super) fn open(path: &Path) -> anyhow::Result<ExportFile> {
        let mut lines = Lines::open(path)?;
        let Some((first, at)) = lines.next()? else {
            bail!(
                "{}: empty file, not a sealgate ledger export",
                path.display()
            );
        };
        let not_an_export = || {
            at.error(format_args!(
                "not a sealgate ledger export (the first line must be its header, format {FORMAT})"
            ))
        };
        let header = at.parse(first).map_err(|_| not_an_export())?;
        let format = header.format.as_deref().unwrap_or_default();
        if header.kind != "header" || ![FORMAT, FORMAT_V1].contains(&format) {
            return Err(not_an_export());
        }
        let checkpoints_first = format == FORMAT;
        let twice = || {
            anyhow::anyhow!(
                "{}: a {FORMAT_V1} export is read twice, so it must be a regular file that does not change",
                path.display()
            )
        };
        // Refused before the first pass, which would read a pipe to its end for nothing.
        if !checkpoints_first && !std::fs::metadata(path)?.is_file() {
            return Err(twice());
        }
        let tree_size = header
            .tree_size
            .ok_or_else(|| at.error(format_args!("header without tree_size")))?;
        let log_key = header.log_key.map(Cow::into_owned);
        let header = first.to_vec();
        let mut checkpoints = Vec::new();
        while let Some((line, at)) = lines.next()? {
            let line = at.parse(line)?;
            match line.kind.as_ref() {
                "checkpoint" => checkpoints.push(at.note(line)?),
                "entry" if checkpoints_first => {
                    lines.unread();
                    break;
                }
                "entry" => {}
                other => at.unknown(other)?,
            }
        }
        if !checkpoints_first {
            // The entries come from a second pass over the same bytes.
            lines = Lines::open(path)?;
            if lines.next()?.is_none_or(|(line, _)| line != header) {
                return Err(twice());
            }
        }
        Ok(ExportFile {
            lines,
            tree_size,
            log_key,
            checkpoints,
            checkpoints_first,
        })
    }

    /// Hands each entry line to `each` as `(index, canonical bytes, stored leaf hash)`,
    /// in file order, until `each` breaks. A line that is not a well-formed entry is
    /// an error naming the line.
    pub(super) fn entries(
        &mut self,
        mut each: impl FnMut(u64, &[u8], &Hash) -> ControlFlow<()>,
    ) -> anyhow::Result<()> {
        let mut canonical = Vec::new();
        let mut seen_entry = false;
        while let Some((line, at)) = self.lines.next()? {
            let line = at.parse(line)?;
            match line.kind.as_ref() {
                "entry" => {
                    seen_entry = true;
                    let (index, leaf) = at.entry(&line, &mut canonical)?;
                    if each(index, &canonical, &leaf).is_break() {
                        break;
                    }
                }
                "checkpoint" if self.checkpoints_first && seen_entry => {
                    return Err(at.error(format_args!(
                        "a checkpoint after the entries (format {FORMAT} lists them first)"
                    )))
                }
                "checkpoint" => {}
                "header" => return Err(at.error(format_args!("a second header"))),
                other => at.unknown(other)?,
            }
        }
        Ok(())
    }
}

/// The file's lines, one buffer reused.
struct Lines {
    reader: BufReader<File>,
    buf: Vec<u8>,
    /// `buf` holds a line handed out and given back by [`Lines::unread`].
    unread: bool,
    at: Place,
}

/// Which line of which file, for messages.
struct Place {
    path: PathBuf,
    /// From 1; 0 before the first line.
    number: u64,
    /// The line is the file's last and has no line ending: the file may be cut short.
    unterminated: bool,
}

impl Lines {
    fn open(path: &Path) -> anyhow::Result<Lines> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Lines {
            reader: BufReader::with_capacity(1 << 20, file),
            buf: Vec::new(),
            unread: false,
            at: Place {
                path: path.to_owned(),
                number: 0,
                unterminated: false,
            },
        })
    }

    /// The next line without its line ending, and where it is; None at the end.
    fn next(&mut self) -> anyhow::Result<Option<(&[u8], &Place)>> {
        if std::mem::take(&mut self.unread) {
            return Ok(Some((trim_line_end(&self.buf), &self.at)));
        }
        self.buf.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut self.buf)
            .with_context(|| format!("reading {}", self.at.path.display()))?;
        if read == 0 {
            return Ok(None);
        }
        self.at.number += 1;
        let terminated = self.buf.last() == Some(&b'\n');
        if read as u64 > MAX_LINE && !terminated {
            return Err(self.at.error(format_args!(
                "a line longer than {} MiB: not an export line",
                MAX_LINE >> 20
            )));
        }
        self.at.unterminated = !terminated;
        Ok(Some((trim_line_end(&self.buf), &self.at)))
    }

    /// Makes the next call hand out the last line again.
    fn unread(&mut self) {
        self.unread = true;
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl Place {
    fn error(&self, what: std::fmt::Arguments<'_>) -> anyhow::Error {
        anyhow::anyhow!("{}:{}: {what}", self.path.display(), self.number)
    }

    fn parse<'a>(&self, line: &'a [u8]) -> anyhow::Result<Line<'a>> {
        serde_json::from_slice(line).map_err(|e| {
            let blank = line.iter().all(u8::is_ascii_whitespace);
            if self.unterminated && e.is_eof() && !blank {
                // A file cut in the middle of its last line lost what followed: the same
                // finding as one cut at a line boundary, not a malformed file.
                return anyhow::Error::new(Tamper(format!(
                    "{}:{}: the export ends in the middle of a line: it was cut short",
                    self.path.display(),
                    self.number
                )));
            }
            self.error(format_args!("not an export line ({e})"))
        })
    }

    fn note(&self, line: Line<'_>) -> anyhow::Result<String> {
        line.note
            .ok_or_else(|| self.error(format_args!("checkpoint without a note")))
    }

    /// An entry line's index and stored leaf hash, its bytes decoded into `canonical`.
    fn entry(&self, line: &Line<'_>, canonical: &mut Vec<u8>) -> anyhow::Result<(u64, Hash)> {
        let bad = |what: &str| self.error(format_args!("malformed entry line: {what}"));
        let index = line.index.ok_or_else(|| bad("no index"))?;
        let leaf: Hash = line
            .leaf_hash
            .as_deref()
            .and_then(|s| B64.decode(s).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("leaf_hash is not 32 bytes of base64"))?;
        canonical.clear();
        let text = line
            .canonical
            .as_deref()
            .ok_or_else(|| bad("no canonical"))?;
        B64.decode_vec(text, canonical)
            .map_err(|_| bad("canonical is not base64"))?;
        Ok((index, leaf))
    }

    fn unknown(&self, kind: &str) -> anyhow::Result<()> {
        Err(self.error(format_args!("unknown line kind {kind:?}")))
    }
}
