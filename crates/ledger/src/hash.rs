//! RFC 6962 / RFC 9162 hashing: the leaf and interior-node hash functions and the
//! empty-tree root. Owns nothing else; every other module builds on these three.

use sha2::{Digest, Sha256};

/// A SHA-256 Merkle tree hash.
pub type Hash = [u8; 32];

/// Root of the empty tree: SHA-256 of the empty string (RFC 9162 section 2.1.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Domain-separation prefix of leaf hashes.
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of interior-node hashes.
const NODE_PREFIX: u8 = 0x01;

/// Hash of a leaf: SHA-256(0x00 || bytes).
#[must_use]
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(bytes);
    hasher.finalize().into()
}

/// Hash of an interior node: SHA-256(0x01 || left || right).
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut block = [0u8; 65];
    block[0] = NODE_PREFIX;
    block[1..33].copy_from_slice(left);
    block[33..].copy_from_slice(right);
    Sha256::digest(block).into()
}

/// Converts a byte slice to a [`tyalias@Hash`] if it is exactly 32 bytes long.
#[must_use]
pub fn hash_from_slice(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let digest: Hash = Sha256::digest(b"").into();
        assert_eq!(EMPTY_ROOT, digest);
    }

    #[test]
    fn leaf_and_node_are_domain_separated() {
        let l = leaf_hash(b"");
        assert_ne!(l, EMPTY_ROOT);
        assert_ne!(node_hash(&l, &l), leaf_hash(&[l, l].concat()));
    }

    #[test]
    fn hash_from_slice_requires_32_bytes() {
        assert!(hash_from_slice(&[0u8; 31]).is_none());
        assert!(hash_from_slice(&[0u8; 33]).is_none());
        assert_eq!(hash_from_slice(&[7u8; 32]), Some([7u8; 32]));
    }
}
