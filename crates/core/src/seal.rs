//! Seals: compact JWS tokens (RFC 7515, EdDSA over Ed25519, RFC 8037) that bind an
//! approved manifest to its ledger entry. Any JOSE library verifies them against the
//! JWKS this module renders; sealgate itself verifies them here, strictly.
//!
//! This module signs and checks bytes; whether a seal was redeemed is the ledger's business.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The JWS `typ` of a seal.
pub const SEAL_TYP: &str = "seal+jwt";

/// What a seal asserts. Registered claim names (RFC 7519) where one fits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealClaims {
    /// The gateway that issued it (its log origin).
    pub iss: String,
    /// The agent the decision was for.
    pub sub: String,
    /// seal_id: unique, the key redemption is recorded under.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub decision_id: String,
    pub manifest_id: String,
    /// Hex SHA-256 of the manifest's canonical bytes.
    pub manifest_hash: String,
    /// Ledger index of the decision the seal executes.
    pub ledger_index: u64,
    /// For a seal a person granted: ledger index of the `approval_resolved` entry
    /// that granted it (the decision at `ledger_index` was pending approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_index: Option<u64>,
    pub policy_version: String,
    pub org_id: String,
    pub provider: String,
    pub method: String,
}

/// The protected header. Only these three members: a header with others (`crit`
/// above all, RFC 7515 §4.1.11) is not one sealgate wrote, so it is refused.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// Signs seals. Injected, so the server holds keys and tests use fixed ones.
pub trait SealSigner: Send + Sync {
    fn key_id(&self) -> &str;
    fn sign(&self, message: &[u8]) -> Signature;
}

/// An in-memory Ed25519 seal key; its `kid` is the RFC 7638 JWK thumbprint.
pub struct Ed25519SealSigner {
    key: SigningKey,
    kid: String,
}

impl Ed25519SealSigner {
    pub fn new(key: SigningKey) -> Self {
        let kid = jwk_thumbprint(&key.verifying_key());
        Self { key, kid }
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

impl std::fmt::Debug for Ed25519SealSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519SealSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SealSigner for Ed25519SealSigner {
    fn key_id(&self) -> &str {
        &self.kid
    }
    fn sign(&self, message: &[u8]) -> Signature {
        self.key.sign(message)
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key (RFC 8037 §2 member order).
pub fn jwk_thumbprint(key: &VerifyingKey) -> String {
    let x = B64URL.encode(key.as_bytes());
    let members = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    B64URL.encode(Sha256::digest(members.as_bytes()))
}

/// The public JWK for a seal key, as published in `/.well-known/jwks.json`.
pub fn jwk(key: &VerifyingKey) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": B64URL.encode(key.as_bytes()),
        "kid": jwk_thumbprint(key),
        "alg": "EdDSA",
        "use": "sig",
    })
}

/// Produces the compact JWS for `claims`.
pub fn sign(claims: &SealClaims, signer: &dyn SealSigner) -> String {
    let header = Header {
        alg: "EdDSA".into(),
        typ: SEAL_TYP.into(),
        kid: signer.key_id().into(),
    };
    // Both are plain structs of strings and integers: serialization cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = String::with_capacity(512);
    token.push_str(&B64URL.encode(header));
    token.push('.');
    token.push_str(&B64URL.encode(payload));
    let signature = signer.sign(token.as_bytes());
    token.push('.');
    token.push_str(&B64URL.encode(signature.to_bytes()));
    token
}

/// Why a seal was refused. None of these says which byte was wrong; it need not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("seal is not a compact JWS")]
    Malformed,
    #[error("seal header is not a sealgate seal (alg EdDSA, typ {SEAL_TYP})")]
    WrongType,
    #[error("seal was signed by an unknown key")]
    UnknownKey,
    #[error("seal signature is invalid")]
    BadSignature,
    #[error("seal expired")]
    Expired,
}

/// Checks signature and structure against `keys` (kid → key); expiry is checked
/// separately with [`SealClaims::expired_at`] so callers can tell 410 from 401.
pub fn verify<'k>(
    token: &str,
    keys: impl Fn(&str) -> Option<&'k VerifyingKey>,
) -> Result<SealClaims, SealError> {
    if token.len() > 8 * 1024 {
        return Err(SealError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SealError::Malformed);
    };
    let header: Header = B64URL
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(SealError::Malformed)?;
    if header.alg != "EdDSA" || header.typ != SEAL_TYP {
        return Err(SealError::WrongType);
    }
    let key = keys(&header.kid).ok_or(SealError::UnknownKey)?;
    let signature: [u8; 64] = B64URL
        .decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SealError::Malformed)?;
    let signed = &token[..h.len() + 1 + p.len()];
    key.verify_strict(signed.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| SealError::BadSignature)?;
    B64URL
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(SealError::Malformed)
}

impl SealClaims {
    /// Whether the seal is expired at `now` (unix seconds). A seal is valid up to and
    /// including its `exp` second.
    pub fn expired_at(&self, now: i64) -> bool {
        now > self.exp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> SealClaims {
        SealClaims {
            iss: "sealgate.test".into(),
            sub: "agent-7".into(),
            jti: "seal-1".into(),
            iat: 1_700_000_000,
            exp: 1_700_000_300,
            decision_id: "d".into(),
            manifest_id: "m".into(),
            manifest_hash: "00".repeat(32),
            ledger_index: 42,
            approval_index: None,
            policy_version: "ab".repeat(32),
            org_id: "acme".into(),
            provider: "stripe".into(),
            method: "payment".into(),
        }
    }

    fn signer(seed: u8) -> Ed25519SealSigner {
        Ed25519SealSigner::new(SigningKey::from_bytes(&[seed; 32]))
    }

    #[test]
    fn signed_seal_verifies_and_roundtrips_claims() {
        let s = signer(1);
        let vk = s.verifying_key();
        let token = sign(&claims(), &s);
        let got = verify(&token, |kid| (kid == s.key_id()).then_some(&vk)).expect("valid");
        assert_eq!(got, claims());
    }

    #[test]
    fn altered_forged_and_foreign_seals_are_refused() {
        let s = signer(1);
        let vk = s.verifying_key();
        let keys = |kid: &str| (kid == s.key_id()).then_some(&vk);
        let token = sign(&claims(), &s);

        // Altered payload: change the ledger index and keep the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut c = claims();
        c.ledger_index = 43;
        let altered = format!(
            "{}.{}.{}",
            parts[0],
            B64URL.encode(serde_json::to_vec(&c).expect("json")),
            parts[2]
        );
        assert_eq!(verify(&altered, keys), Err(SealError::BadSignature));

        // Foreign key that claims our kid.
        let foreign = signer(2);
        let forged = sign(&claims(), &foreign);
        assert_eq!(verify(&forged, keys), Err(SealError::UnknownKey));
        let mut p: Vec<String> = forged.split('.').map(str::to_owned).collect();
        p[0] = parts[0].to_owned();
        assert_eq!(verify(&p.join("."), keys), Err(SealError::BadSignature));

        // A header with a member sealgate never writes, signed by our own key.
        let header = br#"{"alg":"EdDSA","typ":"seal+jwt","kid":"KID","crit":["exp"]}"#;
        let header = std::str::from_utf8(header)
            .expect("utf8")
            .replace("KID", s.key_id());
        let mut extra = B64URL.encode(header.as_bytes());
        extra.push('.');
        extra.push_str(parts[1]);
        let sig = s.sign(extra.as_bytes());
        extra.push('.');
        extra.push_str(&B64URL.encode(sig.to_bytes()));
        assert_eq!(verify(&extra, keys), Err(SealError::Malformed));

        // Structural garbage.
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!", &token[..token.len() - 2]] {
            assert!(verify(bad, keys).is_err(), "{bad}");
        }
    }

    #[test]
    fn thumbprint_matches_rfc8037_example() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        let x = B64URL
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("b64");
        let vk = VerifyingKey::from_bytes(&x.try_into().expect("32 bytes")).expect("key");
        assert_eq!(
            jwk_thumbprint(&vk),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn expiry_is_inclusive_of_exp_second() {
        let c = claims();
        assert!(!c.expired_at(c.exp));
        assert!(c.expired_at(c.exp + 1));
    }
}
