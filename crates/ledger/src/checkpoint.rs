//! C2SP tlog-checkpoint bodies (<https://c2sp.org/tlog-checkpoint>): the origin line,
//! the decimal tree size, the base64 root hash and optional extension lines.
//! Formats and strictly parses the note text; signing and signature checks belong
//! to [`crate::note`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::hash::Hash;
use crate::note::{self, Note, NoteError, NoteVerifier};

/// Why a checkpoint body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The body does not follow the checkpoint format.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The signed note around the checkpoint was refused.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The checkpoint is from another log.
    #[error("checkpoint origin {got:?} is not {expected:?}")]
    WrongOrigin {
        /// Origin the caller expected.
        expected: String,
        /// Origin in the checkpoint.
        got: String,
    },
}

/// A log's tree head: which log, how many entries, and the root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log identity, e.g. `sealgate.example.com/ledger`. Non-empty, one line.
    pub origin: String,
    /// Number of entries in the tree.
    pub size: u64,
    /// RFC 6962 root of the tree of `size` entries.
    pub root: Hash,
    /// Opaque extension lines, each non-empty. Their use is NOT RECOMMENDED.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Self {
        Self {
            origin: origin.into(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// The note text: one line each for origin, size, base64 root and extensions,
    /// each ending in a newline. Fails if the origin or an extension is empty or
    /// holds a newline or another control character.
    pub fn body(&self) -> Result<String, CheckpointError> {
        check_line(&self.origin)?;
        for extension in &self.extensions {
            check_line(extension)?;
        }
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for extension in &self.extensions {
            body.push_str(extension);
            body.push('\n');
        }
        Ok(body)
    }

    /// Parses a note text strictly: at least three non-empty lines, a size without
    /// leading zeros that fits in 64 bits, a canonical standard-base64 root of 32
    /// bytes, a final newline, and no control characters.
    pub fn parse(body: &str) -> Result<Self, CheckpointError> {
        let body = body
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("body must end with a newline"))?;
        if body.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(CheckpointError::Malformed("control character"));
        }
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(CheckpointError::Malformed("empty origin"));
        }
        let size = parse_size(
            lines
                .next()
                .ok_or(CheckpointError::Malformed("missing tree size"))?,
        )?;
        let root = parse_root(
            lines
                .next()
                .ok_or(CheckpointError::Malformed("missing root hash"))?,
        )?;
        let extensions = lines
            .map(|line| {
                if line.is_empty() {
                    Err(CheckpointError::Malformed("empty extension line"))
                } else {
                    Ok(line.to_owned())
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Signs the body as a note with `signer`.
    pub fn sign(&self, signer: &note::NoteSigner) -> Result<String, CheckpointError> {
        Ok(signer.sign(&self.body()?)?)
    }

    /// Opens a signed checkpoint: verifies the note against `verifiers`, parses its
    /// body and checks that it comes from the log named `origin`.
    pub fn open(
        signed: impl AsRef<[u8]>,
        origin: &str,
        verifiers: &[NoteVerifier],
    ) -> Result<(Self, Note), CheckpointError> {
        let note = note::open(signed, verifiers)?;
        let checkpoint = Self::parse(&note.text)?;
        if checkpoint.origin != origin {
            return Err(CheckpointError::WrongOrigin {
                expected: origin.to_owned(),
                got: checkpoint.origin,
            });
        }
        Ok((checkpoint, note))
    }
}

fn check_line(line: &str) -> Result<(), CheckpointError> {
    if line.is_empty() {
        return Err(CheckpointError::Malformed("empty line"));
    }
    if line.bytes().any(|b| b < 0x20) {
        return Err(CheckpointError::Malformed(
            "newline or control character in a line",
        ));
    }
    Ok(())
}

fn parse_size(line: &str) -> Result<u64, CheckpointError> {
    let digits_only = !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (line.len() > 1 && line.starts_with('0')) {
        return Err(CheckpointError::Malformed(
            "tree size is not a decimal without leading zeros",
        ));
    }
    line.parse()
        .map_err(|_| CheckpointError::Malformed("tree size does not fit in 64 bits"))
}

fn parse_root(line: &str) -> Result<Hash, CheckpointError> {
    // The standard engine requires padding and rejects non-zero trailing bits, so
    // only the canonical encoding of a hash is accepted.
    let bytes = STANDARD
        .decode(line)
        .map_err(|_| CheckpointError::Malformed("root hash is not standard base64"))?;
    bytes
        .try_into()
        .map_err(|_| CheckpointError::Malformed("root hash is not 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_BODY: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn spec_example_round_trips() {
        let c = Checkpoint::parse(SPEC_BODY).unwrap();
        assert_eq!(c.origin, "example.com/behind-the-sofa");
        assert_eq!(c.size, 20_852_163);
        assert!(c.extensions.is_empty());
        assert_eq!(c.body().unwrap(), SPEC_BODY);
    }

    #[test]
    fn extensions_round_trip() {
        let mut c = Checkpoint::new("o", 0, [0; 32]);
        c.extensions.push("ext one".into());
        let body = c.body().unwrap();
        assert_eq!(Checkpoint::parse(&body).unwrap(), c);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        for bad in [
            String::new(),
            "o\n1\n".to_owned(),
            format!("o\n1\n{root}"),
            format!("\n1\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n 1\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".to_owned(),
            "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".to_owned(),
            "o\n1\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n".to_owned(),
            "o\n1\nAAAA\n".to_owned(),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root}\next\n\n"),
            format!("o\t\n1\n{root}\n"),
            format!("o\r\n1\n{root}\n"),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\n"))
                .unwrap()
                .size,
            u64::MAX
        );
        assert_eq!(
            Checkpoint::parse(&format!("o\n0\n{root}\n")).unwrap().size,
            0
        );
    }

    #[test]
    fn bodies_with_bad_lines_are_not_formatted() {
        assert!(Checkpoint::new("", 1, [0; 32]).body().is_err());
        assert!(Checkpoint::new("a\nb", 1, [0; 32]).body().is_err());
        let mut c = Checkpoint::new("a", 1, [0; 32]);
        c.extensions.push(String::new());
        assert!(c.body().is_err());
    }
}
