//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys: signing,
//! opening (parsing and verifying) notes, and the text forms of keys — the verifier
//! key `<name>+<keyid>+<base64(0x01||pubkey)>` and the private key
//! `PRIVATE+KEY+<name>+<keyid>+<base64(0x01||seed)>`. Knows nothing about what the
//! note text means; see [`crate::checkpoint`] for that.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type byte of Ed25519 note signatures.
pub const ALG_ED25519: u8 = 0x01;

/// Most signatures [`open`] reads before calling a note malformed. The spec asks
/// for at least 16; golang.org/x/mod/sumdb/note uses 100.
pub const MAX_SIGNATURES: usize = 100;

/// Prefix of a signature line: em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note, key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is not a well-formed signed note.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// The text to sign is not valid note text.
    #[error("invalid note text: {0}")]
    InvalidText(&'static str),
    /// A key name is empty or contains a space or `+`.
    #[error("invalid key name")]
    InvalidName,
    /// A key in text form could not be parsed.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A key's stated key ID does not match its name and public key.
    #[error("key ID {stated} does not match the key (expected {computed})")]
    KeyIdMismatch {
        /// Key ID written in the key.
        stated: KeyId,
        /// Key ID computed from the name and public key.
        computed: KeyId,
    },
    /// Several known verifiers have the same name and key ID.
    #[error("ambiguous key {name}+{key_id}")]
    AmbiguousKey {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: KeyId,
    },
    /// A signature by a known key does not verify; the whole note is rejected.
    #[error("invalid signature for key {name}+{key_id}")]
    InvalidSignature {
        /// Key name.
        name: String,
        /// Key ID.
        key_id: KeyId,
    },
    /// No signature is by a known key.
    #[error("note has no signature by a known key")]
    UnknownKeys,
}

/// The 4-byte key ID of a note key: the first four bytes, big-endian, of
/// SHA-256(name || 0x0A || signature type || public key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u32);

impl KeyId {
    /// The key ID of a key of signature type `alg`, public key bytes `key`.
    #[must_use]
    pub fn compute(name: &str, alg: u8, key: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([b'\n', alg])
            .chain_update(key)
            .finalize();
        Self(u32::from_be_bytes([
            digest[0], digest[1], digest[2], digest[3],
        ]))
    }

    /// The key ID of an Ed25519 key.
    #[must_use]
    pub fn ed25519(name: &str, key: &VerifyingKey) -> Self {
        Self::compute(name, ALG_ED25519, key.as_bytes())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl FromStr for KeyId {
    type Err = NoteError;

    /// Exactly eight hex digits.
    fn from_str(s: &str) -> Result<Self, NoteError> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NoteError::InvalidKey("key ID is not 8 hex digits"));
        }
        u32::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| NoteError::InvalidKey("key ID is not 8 hex digits"))
    }
}

/// Whether `name` may name a key: non-empty, no Unicode space, no `+`.
#[must_use]
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(NoteError::InvalidName)
    }
}

/// A key that verifies Ed25519 note signatures, with its name and key ID.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: KeyId,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for `key` under `name`.
    pub fn new(name: impl Into<String>, key: VerifyingKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_name(&name)?;
        let key_id = KeyId::ed25519(&name, &key);
        Ok(Self { name, key_id, key })
    }

    /// Key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key ID.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The Ed25519 public key.
    #[must_use]
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether `signature` is this key's signature of `text`.
    #[must_use]
    pub fn verify(&self, text: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature).is_ok_and(|sig| self.key.verify_strict(text, &sig).is_ok())
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({self})")
    }
}

impl fmt::Display for NoteVerifier {
    /// The verifier key text form `<name>+<keyid>+<base64(0x01||pubkey)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{}+{}", self.name, self.key_id, STANDARD.encode(key))
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;

    /// Parses `<name>+<keyid>+<base64(0x01||pubkey)>`, checking the key ID.
    fn from_str(vkey: &str) -> Result<Self, NoteError> {
        let mut fields = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(NoteError::InvalidKey("verifier key needs name+keyid+key"));
        };
        check_name(name)?;
        let stated: KeyId = id.parse()?;
        let key = decode_typed_key(key)?;
        let key = VerifyingKey::from_bytes(&key)
            .map_err(|_| NoteError::InvalidKey("not an Ed25519 public key"))?;
        let verifier = Self::new(name, key)?;
        if verifier.key_id != stated {
            return Err(NoteError::KeyIdMismatch {
                stated,
                computed: verifier.key_id,
            });
        }
        Ok(verifier)
    }
}

/// Decodes base64(0x01 || 32 bytes).
fn decode_typed_key(b64: &str) -> Result<[u8; 32], NoteError> {
    let bytes = STANDARD
        .decode(b64)
        .map_err(|_| NoteError::InvalidKey("key is not base64"))?;
    match bytes.split_first() {
        Some((&ALG_ED25519, key)) => key
            .try_into()
            .map_err(|_| NoteError::InvalidKey("Ed25519 key is not 32 bytes")),
        Some(_) => Err(NoteError::InvalidKey("unsupported signature type")),
        None => Err(NoteError::InvalidKey("empty key")),
    }
}

/// A named Ed25519 key that signs notes.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key_id: KeyId,
    key: SigningKey,
}

impl NoteSigner {
    /// A signer with `key` under `name`.
    pub fn new(name: impl Into<String>, key: SigningKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_name(&name)?;
        let key_id = KeyId::ed25519(&name, &key.verifying_key());
        Ok(Self { name, key_id, key })
    }

    /// Parses the private key text form `PRIVATE+KEY+<name>+<keyid>+<base64(0x01||seed)>`.
    pub fn from_private_key(skey: &str) -> Result<Self, NoteError> {
        let mut fields = skey.splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id), Some(key)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(NoteError::InvalidKey(
                "private key needs PRIVATE+KEY+name+keyid+key",
            ));
        };
        check_name(name)?;
        let stated: KeyId = id.parse()?;
        let signer = Self::new(name, SigningKey::from_bytes(&decode_typed_key(key)?))?;
        if signer.key_id != stated {
            return Err(NoteError::KeyIdMismatch {
                stated,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// The private key text form. It is the secret: handle it like one.
    #[must_use]
    pub fn to_private_key(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(key)
        )
    }

    /// Key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key ID.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The matching verifier.
    #[must_use]
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` and returns the signed note: the text, a blank line and this
    /// key's signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        let line = self.signature_line(text)?;
        Ok(format!("{text}\n{line}"))
    }

    /// This key's signature line for `text`, `— <name> <base64(keyid||sig)>\n`, to
    /// add to a note signed by others.
    pub fn signature_line(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut payload = Vec::with_capacity(4 + 64);
        payload.extend_from_slice(&self.key_id.0.to_be_bytes());
        payload.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(payload)
        ))
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Checks that `text` can be signed: non-empty, ending in a newline, free of
/// control characters other than newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::InvalidText("text must end with a newline"));
    }
    if has_control(text) {
        return Err(NoteError::InvalidText("text contains a control character"));
    }
    Ok(())
}

fn has_control(text: &str) -> bool {
    text.bytes().any(|b| b < 0x20 && b != b'\n')
}

/// A signature line of an opened note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID.
    pub key_id: KeyId,
    /// The base64 payload as written (key ID and signature).
    pub base64: String,
}

/// A note whose signatures were checked by [`open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline.
    pub text: String,
    /// Signatures by known keys, all verified.
    pub signatures: Vec<NoteSignature>,
    /// Signatures by unknown keys, not verified (the spec says to ignore them;
    /// they are kept for callers that look for witness cosignatures).
    pub unverified: Vec<NoteSignature>,
}

/// Parses a signed note and verifies its signatures against `verifiers`.
///
/// Rejects a malformed note, a note with an invalid signature by a known key, and a
/// note with no signature by a known key. Signatures by unknown keys are ignored
/// (kept in [`Note::unverified`]), as the spec requires; repeated signatures by one
/// key count once.
pub fn open(note: impl AsRef<[u8]>, verifiers: &[NoteVerifier]) -> Result<Note, NoteError> {
    let note = std::str::from_utf8(note.as_ref()).map_err(|_| NoteError::Malformed("not UTF-8"))?;
    if has_control(note) {
        return Err(NoteError::Malformed("control character"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, sigs) = (&note[..=split], &note[split + 2..]);
    if sigs.is_empty() {
        return Err(NoteError::Malformed("no signatures"));
    }
    let Some(sigs) = sigs.strip_suffix('\n') else {
        return Err(NoteError::Malformed("note does not end with a newline"));
    };

    let mut opened = Note {
        text: text.to_owned(),
        signatures: Vec::new(),
        unverified: Vec::new(),
    };
    for (count, line) in sigs.split('\n').enumerate() {
        if count >= MAX_SIGNATURES {
            return Err(NoteError::Malformed("too many signatures"));
        }
        let line = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
            "signature line must start with an em dash",
        ))?;
        let (name, b64) = line.split_once(' ').ok_or(NoteError::Malformed(
            "signature line needs a name and a signature",
        ))?;
        if !is_valid_name(name) {
            return Err(NoteError::Malformed("invalid key name in signature line"));
        }
        let payload = STANDARD
            .decode(b64)
            .map_err(|_| NoteError::Malformed("signature is not base64"))?;
        let Some((id, signature)) = payload.split_first_chunk::<4>() else {
            return Err(NoteError::Malformed("signature is too short"));
        };
        if signature.is_empty() {
            return Err(NoteError::Malformed("signature is too short"));
        }
        let record = NoteSignature {
            name: name.to_owned(),
            key_id: KeyId(u32::from_be_bytes(*id)),
            base64: b64.to_owned(),
        };

        let mut known = verifiers
            .iter()
            .filter(|v| v.name == record.name && v.key_id == record.key_id);
        let Some(verifier) = known.next() else {
            if !opened.unverified.contains(&record) {
                opened.unverified.push(record);
            }
            continue;
        };
        if known.next().is_some() {
            return Err(NoteError::AmbiguousKey {
                name: record.name,
                key_id: record.key_id,
            });
        }
        if opened
            .signatures
            .iter()
            .any(|s| s.name == record.name && s.key_id == record.key_id)
        {
            continue;
        }
        if !verifier.verify(text.as_bytes(), signature) {
            return Err(NoteError::InvalidSignature {
                name: record.name,
                key_id: record.key_id,
            });
        }
        opened.signatures.push(record);
    }
    if opened.signatures.is_empty() {
        return Err(NoteError::UnknownKeys);
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[7; 32])).unwrap()
    }

    #[test]
    fn sign_then_open_round_trips() {
        let s = signer("example.com/log");
        let note = s.sign("hello\nworld\n").unwrap();
        let opened = open(&note, &[s.verifier()]).unwrap();
        assert_eq!(opened.text, "hello\nworld\n");
        assert_eq!(opened.signatures.len(), 1);
        assert!(opened.unverified.is_empty());
    }

    #[test]
    fn text_with_blank_lines_round_trips() {
        let s = signer("a");
        let note = s.sign("x\n\ny\n\n").unwrap();
        assert_eq!(open(&note, &[s.verifier()]).unwrap().text, "x\n\ny\n\n");
    }

    #[test]
    fn signing_refuses_bad_text() {
        let s = signer("a");
        assert!(s.sign("").is_err());
        assert!(s.sign("no newline").is_err());
        assert!(s.sign("tab\there\n").is_err());
    }

    #[test]
    fn names_with_spaces_or_plus_are_refused() {
        let key = SigningKey::from_bytes(&[1; 32]);
        assert!(NoteSigner::new("", key.clone()).is_err());
        assert!(NoteSigner::new("a b", key.clone()).is_err());
        assert!(NoteSigner::new("a+b", key.clone()).is_err());
        assert!(NoteSigner::new("a\u{00a0}b", key).is_err());
    }

    #[test]
    fn keys_round_trip_through_text() {
        let s = signer("example.com/log");
        let vkey = s.verifier().to_string();
        assert_eq!(vkey.parse::<NoteVerifier>().unwrap(), s.verifier());
        let back = NoteSigner::from_private_key(&s.to_private_key()).unwrap();
        assert_eq!(back.verifier(), s.verifier());
        assert!(!format!("{s:?}").contains(&s.to_private_key()));
    }

    #[test]
    fn wrong_key_id_is_refused() {
        let vkey = signer("a").verifier().to_string();
        let mut parts: Vec<&str> = vkey.splitn(3, '+').collect();
        parts[1] = "00000000";
        assert!(matches!(
            parts.join("+").parse::<NoteVerifier>(),
            Err(NoteError::KeyIdMismatch { .. })
        ));
    }

    #[test]
    fn unknown_key_only_is_refused() {
        let note = signer("a").sign("t\n").unwrap();
        assert_eq!(
            open(&note, &[signer("b").verifier()]),
            Err(NoteError::UnknownKeys)
        );
    }
}
