//! The append side of the tree: [`Frontier`], the compact range `[0, n)` — one perfect
//! subtree hash per set bit of `n`. Appending a leaf reports the perfect nodes it
//! completes, so a store persists each node exactly once; the root is folded from
//! the frontier in O(log n). Owns no storage: nodes go to and come from the caller.

use crate::hash::{leaf_hash, node_hash, Hash, EMPTY_ROOT};
use crate::node::{fold_subtree, NodeId};
use crate::proof::TreeError;

/// The compact range `[0, size)`: the hashes of the perfect subtrees that tile the
/// tree of `size` leaves, from the largest (leftmost) to the smallest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// One hash per set bit of `size`, highest bit first.
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The perfect nodes a store must load to rebuild the frontier of a tree of
    /// `size` leaves, in the order [`Frontier::from_nodes`] expects.
    #[must_use]
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        let mut ids = Vec::with_capacity(size.count_ones() as usize);
        for level in (0..u64::BITS).rev() {
            if size & (1 << level) != 0 {
                // `level < 64`; the node is the one whose right edge is the highest
                // multiple of 2^level not above `size`.
                ids.push(NodeId::new(level as u8, (size >> level) - 1));
            }
        }
        ids
    }

    /// Rebuilds a frontier from the hashes of the nodes [`Frontier::node_ids`]`(size)`,
    /// in that order.
    pub fn from_nodes(size: u64, hashes: Vec<Hash>) -> Result<Self, TreeError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(TreeError::FrontierLength {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// Number of leaves appended so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hashes of the nodes [`Frontier::node_ids`]`(self.size())`, in that order.
    #[must_use]
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The RFC 6962 root of the tree so far ([`EMPTY_ROOT`] when empty).
    #[must_use]
    pub fn root(&self) -> Hash {
        fold_subtree(&self.hashes).unwrap_or(EMPTY_ROOT)
    }

    /// Appends a leaf hash and returns the perfect nodes it completes, lowest level
    /// first: the leaf itself at level 0, then each parent that became complete.
    /// On average two nodes per leaf; these are what a store persists.
    pub fn append(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let mut completed = Vec::with_capacity(2);
        self.append_with(leaf, |id, hash| completed.push((id, *hash)));
        completed
    }

    /// Like [`Frontier::append`], but hands each completed node to `completed`
    /// instead of allocating.
    pub fn append_with(&mut self, leaf: Hash, mut completed: impl FnMut(NodeId, &Hash)) {
        let mut index = self.size;
        let mut level = 0u8;
        let mut hash = leaf;
        completed(NodeId::new(level, index), &hash);
        while index & 1 == 1 {
            // A set low bit of `index` means a pending left sibling on the stack.
            let Some(left) = self.hashes.pop() else {
                break;
            };
            hash = node_hash(&left, &hash);
            index >>= 1;
            level += 1;
            completed(NodeId::new(level, index), &hash);
        }
        self.hashes.push(hash);
        // A tree of 2^64 leaves cannot be built: at a billion appends per second it
        // would take 584 years, so saturating here is unreachable in practice.
        self.size = self.size.saturating_add(1);
    }

    /// Appends a leaf hash, discarding the completed nodes (for streaming checks).
    pub fn push(&mut self, leaf: Hash) {
        self.append_with(leaf, |_, _| {});
    }

    /// Hashes `entry` as a leaf and appends it, discarding the completed nodes.
    pub fn push_entry(&mut self, entry: &[u8]) {
        self.push(leaf_hash(entry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_tile_the_tree() {
        assert!(Frontier::node_ids(0).is_empty());
        assert_eq!(
            Frontier::node_ids(6),
            vec![NodeId::new(2, 0), NodeId::new(1, 2)]
        );
        assert_eq!(
            Frontier::node_ids(7),
            vec![NodeId::new(2, 0), NodeId::new(1, 2), NodeId::new(0, 6)]
        );
        assert_eq!(Frontier::node_ids(u64::MAX).len(), 64);
    }

    #[test]
    fn append_reports_completed_nodes() {
        let mut f = Frontier::new();
        let ids = |v: Vec<(NodeId, Hash)>| v.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        assert_eq!(ids(f.append([0; 32])), vec![NodeId::new(0, 0)]);
        assert_eq!(
            ids(f.append([1; 32])),
            vec![NodeId::new(0, 1), NodeId::new(1, 0)]
        );
        assert_eq!(ids(f.append([2; 32])), vec![NodeId::new(0, 2)]);
        assert_eq!(
            ids(f.append([3; 32])),
            vec![NodeId::new(0, 3), NodeId::new(1, 1), NodeId::new(2, 0)]
        );
        assert_eq!(f.size(), 4);
    }

    #[test]
    fn from_nodes_round_trips() {
        let mut f = Frontier::new();
        for i in 0..11u8 {
            f.push([i; 32]);
        }
        let g = Frontier::from_nodes(11, f.hashes().to_vec());
        assert_eq!(g.as_ref().map(Frontier::root), Ok(f.root()));
        assert!(Frontier::from_nodes(12, f.hashes().to_vec()).is_err());
    }
}
