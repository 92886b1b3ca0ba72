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
pub fn load_or_create_key(path: &Path) -> anyhow::Result<(SigningKey, bool)> {
    if path.exists() {
        return Ok((load_key(path)?, false));
    }
    let key = SigningKey::generate(&mut OsRng);
    let pem = key
        .to_pkcs8_pem(Default::default())
        .map_err(|_| anyhow::anyhow!("encoding a new Ed25519 key failed"))?;
    write_private(path, pem.as_bytes())?;
    Ok((key, true))
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

/// Writes a new secret file with mode 0600; never overwrites.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(())
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
    fn tokens_are_distinct_and_prefixed() {
        let (a, b) = (new_token(), new_token());
        assert!(a.expose_secret().starts_with("sgk_"));
        assert_eq!(a.expose_secret().len(), 4 + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
