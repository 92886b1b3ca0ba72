//! Key material on disk: the seal signing key, the log's checkpoint key and the
//! bootstrap admin token, each a file of mode 0600 in the data directory.
//!
//! Created once on first start and reused after; a file readable by group or others
//! is refused rather than used, and no key or token ever reaches a log line.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};

pub const SEAL_KEY_FILE: &str = "seal-key.pem";
pub const LOG_KEY_FILE: &str = "log-key.pem";
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// The HMAC key of redaction markers (an Ed25519 seed file, used as 32 secret bytes).
pub const REDACTION_KEY_FILE: &str = "redaction-key.pem";

/// Creates the data directory (mode 0700) if missing.
pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// Loads an existing Ed25519 key (PKCS#8 PEM); never creates one.
pub fn load_key(path: &Path) -> anyhow::Result<SigningKey> {
    check_private(path)?;
    let pem =
        fs::read_to_string(path).with_context(|| format!("reading key {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|_| {
        anyhow::anyhow!(
            "{} is not an Ed25519 PKCS#8 PEM private key",
            path.display()
        )
    })
}

/// Loads the Ed25519 key in `path` (PKCS#8 PEM), creating it on first start.
/// Returns the key and whether it was created now.
///
/// Safe when several replicas share the data directory and start together: the file
/// appears complete or not at all (`create_private`), and a process that loses the
/// race loads the winner's key, so all of them sign with the same one.
pub fn load_or_create_key(path: &Path) -> anyhow::Result<(SigningKey, bool)> {
    if path.exists() {
        return Ok((load_key(path)?, false));
    }
    let key = SigningKey::generate(&mut OsRng);
    // PKCS#8 v1 (RFC 8410, the private key alone), which OpenSSL 3.0 and Python's
    // cryptography read; dalek's default adds the public key as v2, which they refuse.
    // Either form loads here.
    let pem = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_pem(Default::default())
    .map_err(|_| anyhow::anyhow!("encoding a new Ed25519 key failed"))?;
    if create_private(path, pem.as_bytes())? {
        Ok((key, true))
    } else {
        Ok((load_key(path)?, false))
    }
}

/// Refuses key and token files that others could read.
pub fn check_private(path: &Path) -> anyhow::Result<()> {
    let mode = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} has mode {:o}; it holds a secret and must be readable by its owner only (chmod 600 {})",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

/// Writes a new secret file with mode 0600; never overwrites (an existing file is an
/// error).
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if create_private(path, contents)? {
        Ok(())
    } else {
        bail!("creating {}: the file already exists", path.display())
    }
}

/// Creates a secret file (mode 0600) atomically: the contents go to a private temporary
/// file beside it, which is then hard-linked into place. Linking never replaces a file,
/// so of processes racing to create `path` exactly one succeeds, and nobody ever sees it
/// half-written. Returns false when `path` already existed (left untouched).
pub fn create_private(path: &Path, contents: &[u8]) -> anyhow::Result<bool> {
    let tmp = {
        use rand::RngCore;
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".tmp-{:016x}", OsRng.next_u64()));
        PathBuf::from(name)
    };
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(contents)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        anyhow::Ok(())
    })();
    let linked = written.and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating {}", path.display()))),
    });
    let _ = fs::remove_file(&tmp);
    let created = linked?;
    if created {
        if let Some(dir) = path.parent() {
            // Make the new name durable; best effort.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
    }
    Ok(created)
}

/// A fresh API token: 256 random bits, base64url, with a recognisable prefix so
/// secret scanners can find leaked ones.
pub fn new_token() -> SecretString {
    use base64::Engine as _;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    SecretString::from(format!(
        "sgk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// A fresh key id (not secret).
pub fn new_key_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    OsRng.fill_bytes(&mut bytes);
    format!("key_{}", hex::encode(bytes))
}

/// Path of the admin token file in `data_dir`.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(ADMIN_TOKEN_FILE)
}

/// Writes the bootstrap admin token file.
pub fn write_admin_token(path: &Path, token: &SecretString) -> anyhow::Result<()> {
    write_private(path, format!("{}\n", token.expose_secret()).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_private_and_reloaded_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(SEAL_KEY_FILE);
        let (k1, created) = load_or_create_key(&path).expect("create");
        assert!(created);
        assert_eq!(
            fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let (k2, created) = load_or_create_key(&path).expect("load");
        assert!(!created);
        assert_eq!(k1.to_bytes(), k2.to_bytes());
    }

    /// New keys are PKCS#8 v1 (what OpenSSL 3.0 reads); v2 files, which earlier
    /// versions wrote, still load.
    #[test]
    fn keys_are_written_as_pkcs8_v1_and_v2_still_loads() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LOG_KEY_FILE);
        let (key, _) = load_or_create_key(&path).expect("create");
        let pem = fs::read_to_string(&path).expect("read");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("base64");
        // SEQUENCE { INTEGER 0, AlgorithmIdentifier { 1.3.101.112 }, OCTET STRING }
        assert_eq!(der.len(), 48, "{der:02x?}");
        assert_eq!(&der[2..5], &[0x02, 0x01, 0x00], "version v1");

        let v2 = dir.path().join("v2.pem");
        let pem = key.to_pkcs8_pem(Default::default()).expect("v2 pem");
        assert!(create_private(&v2, pem.as_bytes()).expect("write"));
        assert_eq!(load_key(&v2).expect("v2 loads").to_bytes(), key.to_bytes());
    }

    #[test]
    fn readable_key_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(SEAL_KEY_FILE);
        load_or_create_key(&path).expect("create");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = load_or_create_key(&path)
            .expect_err("must refuse")
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn racing_creators_all_end_up_with_one_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(SEAL_KEY_FILE);
        let keys: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create_key(&path).expect("create or load")))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert_eq!(keys.iter().filter(|(_, created)| *created).count(), 1);
        assert!(keys
            .iter()
            .all(|(k, _)| k.to_bytes() == keys[0].0.to_bytes()));
        let leftovers = fs::read_dir(dir.path()).expect("read_dir").count();
        assert_eq!(leftovers, 1, "temporary files left behind");
    }

    #[test]
    fn write_private_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(ADMIN_TOKEN_FILE);
        write_private(&path, b"one").expect("first write");
        assert!(write_private(&path, b"two").is_err());
        assert_eq!(fs::read(&path).expect("read"), b"one");
    }

    #[test]
    fn tokens_are_distinct_and_prefixed() {
        let (a, b) = (new_token(), new_token());
        assert!(a.expose_secret().starts_with("sgk_"));
        assert_eq!(a.expose_secret().len(), 4 + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
