//! Addresses of perfect subtrees ([`NodeId`]) and the decomposition of an RFC 6962
//! subtree into them. This is the vocabulary shared by the frontier, the proof plans
//! and the tile helpers; it hashes nothing and stores nothing.

use std::fmt;
use std::ops::Range;

use crate::hash::{node_hash, Hash};

/// A perfect subtree: the `2^level` leaves `[index << level, (index + 1) << level)`.
///
/// Level 0 nodes are leaf hashes. Stores persist exactly these nodes, and only
/// complete ones (all their leaves appended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    /// Height above the leaves; level 0 is a leaf.
    pub level: u8,
    /// Position among the nodes of the same level, counting from 0 on the left.
    pub index: u64,
}

impl NodeId {
    /// The node at `level` and `index`.
    #[must_use]
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// The leaf node for entry `index`.
    #[must_use]
    pub const fn leaf(index: u64) -> Self {
        Self { level: 0, index }
    }

    /// The first leaf this node covers, or `None` if it lies beyond `u64` leaves.
    #[must_use]
    pub fn first_leaf(&self) -> Option<u64> {
        let first = self.index.checked_shl(u32::from(self.level))?;
        (first >> self.level == self.index).then_some(first)
    }

    /// The leaves this node covers, or `None` if they do not fit in `u64`.
    #[must_use]
    pub fn leaves(&self) -> Option<Range<u64>> {
        let begin = self.first_leaf()?;
        let width = 1u64.checked_shl(u32::from(self.level))?;
        Some(begin..begin.checked_add(width)?)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.level, self.index)
    }
}

/// The perfect nodes making up the RFC 6962 subtree `[begin, end)`, left to right.
///
/// The caller guarantees `begin < end` and that `begin` is a multiple of a power of
/// two `>= end - begin`, i.e. that the range is a (possibly imperfect, right-edge)
/// subtree of the RFC 6962 tree rather than an arbitrary range. Its hash is then
/// the right fold of its components with [`node_hash`] (see [`fold_subtree`]).
pub(crate) fn subtree_components(begin: u64, end: u64, out: &mut Vec<NodeId>) {
    debug_assert!(begin < end);
    let len = end - begin;
    let mut offset = begin;
    for level in (0..u64::BITS).rev() {
        let width = 1u64 << level;
        if len & width != 0 {
            // `level < 64`, so the cast cannot truncate.
            out.push(NodeId::new(level as u8, offset >> level));
            offset += width;
        }
    }
}

/// Hashes a subtree from the hashes of its components, left to right.
///
/// RFC 6962 splits a subtree of `n` leaves at the largest power of two below `n`,
/// so the left part is perfect and the right part recurses: the subtree hash is
/// the right fold of the component hashes.
pub(crate) fn fold_subtree(components: &[Hash]) -> Option<Hash> {
    let (last, rest) = components.split_last()?;
    Some(
        rest.iter()
            .rev()
            .fold(*last, |acc, left| node_hash(left, &acc)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_covers_its_leaves() {
        assert_eq!(NodeId::new(0, 5).leaves(), Some(5..6));
        assert_eq!(NodeId::new(3, 2).leaves(), Some(16..24));
        assert_eq!(NodeId::new(63, 1).leaves(), None);
        assert_eq!(NodeId::new(63, 0).leaves(), Some(0..1 << 63));
        assert_eq!(NodeId::new(1, u64::MAX).leaves(), None);
    }

    #[test]
    fn components_follow_the_bits_of_the_length() {
        let mut out = Vec::new();
        subtree_components(8, 15, &mut out);
        assert_eq!(
            out,
            vec![NodeId::new(2, 2), NodeId::new(1, 6), NodeId::new(0, 14)]
        );
        out.clear();
        subtree_components(0, 1 << 63, &mut out);
        assert_eq!(out, vec![NodeId::new(63, 0)]);
        out.clear();
        subtree_components(0, u64::MAX, &mut out);
        assert_eq!(out.len(), 64);
    }

    #[test]
    fn fold_of_nothing_is_none() {
        assert_eq!(fold_subtree(&[]), None);
        assert_eq!(fold_subtree(&[[1; 32]]), Some([1; 32]));
    }
}
