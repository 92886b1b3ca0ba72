//! Verifying proofs: the RFC 9162 section 2.1.3.2 (inclusion) and 2.1.4.2
//! (consistency) algorithms, with `&[u8]` front doors for untrusted input whose
//! hashes may have the wrong length. Owns no tree state; pure functions only.

use crate::hash::{hash_from_slice, node_hash, Hash};

/// Why a proof did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Claimed leaf index.
        index: u64,
        /// Claimed tree size.
        size: u64,
    },
    /// The first tree is larger than the second.
    #[error("tree size {first} is larger than tree size {second}")]
    SizesOutOfOrder {
        /// Earlier tree size.
        first: u64,
        /// Later tree size.
        second: u64,
    },
    /// Consistency with the empty tree proves nothing and is refused.
    #[error("a consistency proof from the empty tree proves nothing")]
    EmptyFirstTree,
    /// The proof has more hashes than the sizes call for.
    #[error("proof has too many hashes")]
    ProofTooLong,
    /// The proof has fewer hashes than the sizes call for.
    #[error("proof has too few hashes")]
    ProofTooShort,
    /// A leaf hash or proof hash is not 32 bytes.
    #[error("a hash is {0} bytes, not 32")]
    HashLength(usize),
    /// The proof leads to a different root (the second root, for consistency).
    #[error("computed root does not match the expected root")]
    RootMismatch,
    /// A consistency proof leads to a different first root.
    #[error("computed first root does not match the expected first root")]
    FirstRootMismatch,
}

/// The root that an inclusion proof of `leaf` at `index` leads to in a tree of
/// `size` leaves (RFC 9162 section 2.1.3.2 without the final comparison).
pub fn root_from_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let mut fn_ = index;
    let mut sn = size - 1;
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(VerifyError::ProofTooLong);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(VerifyError::ProofTooShort);
    }
    Ok(r)
}

/// Verifies that `leaf` is entry `index` of the tree of `size` leaves with `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if root_from_inclusion(leaf, index, size, proof)? == *root {
        Ok(())
    } else {
        Err(VerifyError::RootMismatch)
    }
}

/// [`verify_inclusion`] for hashes as received: the leaf and proof hashes must be
/// 32 bytes; a root of any other length simply does not match.
pub fn verify_inclusion_bytes<P: AsRef<[u8]>>(
    leaf: &[u8],
    index: u64,
    size: u64,
    proof: &[P],
    root: &[u8],
) -> Result<(), VerifyError> {
    let leaf = to_hash(leaf)?;
    let proof = to_hashes(proof)?;
    if root_from_inclusion(&leaf, index, size, &proof)?.as_slice() == root {
        Ok(())
    } else {
        Err(VerifyError::RootMismatch)
    }
}

/// Verifies that the tree of `size1` leaves with `root1` is a prefix of the tree of
/// `size2` leaves with `root2` (RFC 9162 section 2.1.4.2). Equal sizes need an
/// empty proof and equal roots; `size1 == 0` is refused.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), VerifyError> {
    consistency(size1, size2, proof, root1, root2)
}

/// [`verify_consistency`] for hashes as received: proof hashes must be 32 bytes;
/// roots are compared as given.
pub fn verify_consistency_bytes<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    proof: &[P],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), VerifyError> {
    let proof = to_hashes(proof)?;
    consistency(size1, size2, &proof, root1, root2)
}

fn consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), VerifyError> {
    if size1 > size2 {
        return Err(VerifyError::SizesOutOfOrder {
            first: size1,
            second: size2,
        });
    }
    if size1 == 0 {
        return Err(VerifyError::EmptyFirstTree);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(VerifyError::ProofTooLong);
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch)
        };
    }
    let Some((&head, rest)) = proof.split_first() else {
        return Err(VerifyError::ProofTooShort);
    };
    // When `size1` is a power of two, the proof omits the first root: it is the
    // largest perfect subtree ending at `size1`, where the walk starts.
    let (start, path) = if size1.is_power_of_two() {
        (
            to_hash(root1).map_err(|_| VerifyError::FirstRootMismatch)?,
            proof,
        )
    } else {
        (head, rest)
    };
    let mut fn_ = size1 - 1;
    let mut sn = size2 - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = start;
    let mut sr = start;
    for c in path {
        if sn == 0 {
            return Err(VerifyError::ProofTooLong);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(VerifyError::ProofTooShort);
    }
    if fr.as_slice() != root1 {
        return Err(VerifyError::FirstRootMismatch);
    }
    if sr.as_slice() != root2 {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

fn to_hash(bytes: &[u8]) -> Result<Hash, VerifyError> {
    hash_from_slice(bytes).ok_or(VerifyError::HashLength(bytes.len()))
}

fn to_hashes<P: AsRef<[u8]>>(proof: &[P]) -> Result<Vec<Hash>, VerifyError> {
    proof.iter().map(|p| to_hash(p.as_ref())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn single_leaf_tree_needs_empty_proof() {
        let leaf = leaf_hash(b"x");
        assert_eq!(verify_inclusion(&leaf, 0, 1, &[], &leaf), Ok(()));
        assert_eq!(
            verify_inclusion(&leaf, 0, 1, &[leaf], &leaf),
            Err(VerifyError::ProofTooLong)
        );
        assert_eq!(
            verify_inclusion(&leaf, 1, 1, &[], &leaf),
            Err(VerifyError::IndexOutOfRange { index: 1, size: 1 })
        );
    }

    #[test]
    fn two_leaf_tree() {
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let root = node_hash(&a, &b);
        assert_eq!(verify_inclusion(&a, 0, 2, &[b], &root), Ok(()));
        assert_eq!(verify_inclusion(&b, 1, 2, &[a], &root), Ok(()));
        assert_eq!(
            verify_inclusion(&a, 1, 2, &[b], &root),
            Err(VerifyError::RootMismatch)
        );
        assert_eq!(verify_consistency(1, 2, &[b], &a, &root), Ok(()));
        assert_eq!(
            verify_consistency(1, 2, &[], &a, &root),
            Err(VerifyError::ProofTooShort)
        );
        assert_eq!(
            verify_consistency(0, 2, &[], &a, &root),
            Err(VerifyError::EmptyFirstTree)
        );
    }

    #[test]
    fn short_hashes_are_refused() {
        let leaf = leaf_hash(b"x");
        assert_eq!(
            verify_inclusion_bytes::<&[u8]>(&leaf[..31], 0, 1, &[], &leaf),
            Err(VerifyError::HashLength(31))
        );
        assert_eq!(
            verify_inclusion_bytes(&leaf, 0, 2, &[&leaf[..3]], &leaf),
            Err(VerifyError::HashLength(3))
        );
    }
}
