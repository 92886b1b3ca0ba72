//! Producing proofs from stored perfect nodes: plan, fetch, assemble.
//!
//! A [`ProofPlan`] names every perfect node ([`NodeId`]) an inclusion proof, a
//! consistency proof or a root needs — O(log n) of them — so an async store can
//! fetch them all in one query; [`ProofPlan::assemble`] then hashes the proof from
//! what was fetched. Right-edge subtrees that are not perfect are hashed from their
//! perfect components. This module never touches a store and never verifies; see
//! [`crate::verify`] for the other side.

use std::ops::Range;

use crate::hash::{Hash, EMPTY_ROOT};
use crate::node::{fold_subtree, subtree_components, NodeId};

/// Why a plan could not be made or assembled, or a frontier rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Requested leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error("tree size {first} is larger than tree size {second}")]
    SizesOutOfOrder {
        /// Earlier tree size.
        first: u64,
        /// Later tree size.
        second: u64,
    },
    /// A consistency proof from the empty tree proves nothing and is refused.
    #[error("no consistency proof exists from the empty tree")]
    EmptyFirstTree,
    /// The node source did not have a node the plan needs.
    #[error("node {0} is missing")]
    MissingNode(NodeId),
    /// [`crate::Frontier::from_nodes`] got the wrong number of hashes.
    #[error("a frontier of tree size {size} needs {expected} node hashes, got {got}")]
    FrontierLength {
        /// Tree size.
        size: u64,
        /// Number of hashes needed (the number of set bits of `size`).
        expected: usize,
        /// Number of hashes given.
        got: usize,
    },
}

/// One output hash of a plan: the subtree it covers and its perfect components.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    leaves: Range<u64>,
    /// Indices into [`ProofPlan::nodes`].
    nodes: Range<usize>,
}

/// The perfect nodes a proof (or root) needs, and how to hash them into it.
///
/// The parts of a plan are disjoint subtrees, so every node appears once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPlan {
    nodes: Vec<NodeId>,
    parts: Vec<Part>,
}

/// Plans the inclusion proof of leaf `index` in the tree of `size` leaves
/// (RFC 9162 section 2.1.3.1), bottom-up as verifiers expect.
pub fn inclusion_plan(index: u64, size: u64) -> Result<ProofPlan, TreeError> {
    if index >= size {
        return Err(TreeError::IndexOutOfRange { index, size });
    }
    let mut plan = ProofPlan::empty();
    plan.push_path(0, index, size);
    Ok(plan)
}

/// Plans the consistency proof from the tree of `first` leaves to the tree of
/// `second` leaves (RFC 9162 section 2.1.4.1). Empty when the sizes are equal; an
/// error when `first` is 0 (nothing to prove) or larger than `second`.
pub fn consistency_plan(first: u64, second: u64) -> Result<ProofPlan, TreeError> {
    if first > second {
        return Err(TreeError::SizesOutOfOrder { first, second });
    }
    if first == 0 {
        return Err(TreeError::EmptyFirstTree);
    }
    let mut plan = ProofPlan::empty();
    if first == second {
        return Ok(plan);
    }
    // The largest perfect subtree ending at `first`. Unless it is the whole first
    // tree (`first` a power of two, whose root the verifier already has), it leads
    // the proof; the rest is its inclusion path in the second tree.
    let level = first.trailing_zeros();
    let index = (first - 1) >> level;
    // `first > 0`, so `level < 64`.
    let level = level as u8;
    if index != 0 {
        plan.push_node(NodeId::new(level, index));
    }
    plan.push_path(level, index, second);
    Ok(plan)
}

/// Plans the root of the tree of `size` leaves: assembling it yields one hash
/// ([`EMPTY_ROOT`] for size 0). Its nodes are [`crate::Frontier::node_ids`]`(size)`.
#[must_use]
pub fn root_plan(size: u64) -> ProofPlan {
    let mut plan = ProofPlan::empty();
    if size == 0 {
        plan.parts.push(Part {
            leaves: 0..0,
            nodes: 0..0,
        });
    } else {
        plan.push_subtree(0, size);
    }
    plan
}

impl ProofPlan {
    fn empty() -> Self {
        Self {
            nodes: Vec::new(),
            parts: Vec::new(),
        }
    }

    /// The perfect nodes to fetch, each once.
    #[must_use]
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// The leaf range each assembled hash covers, in proof order.
    pub fn subtrees(&self) -> impl ExactSizeIterator<Item = Range<u64>> + '_ {
        self.parts.iter().map(|part| part.leaves.clone())
    }

    /// Number of hashes [`ProofPlan::assemble`] returns.
    #[must_use]
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether the proof is empty (consistency between equal sizes).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Hashes the proof from the fetched nodes; `node` is asked once per node in
    /// [`ProofPlan::nodes`] and returns `None` for a node it does not have.
    pub fn assemble(
        &self,
        mut node: impl FnMut(NodeId) -> Option<Hash>,
    ) -> Result<Vec<Hash>, TreeError> {
        let hashes = self
            .nodes
            .iter()
            .map(|&id| node(id).ok_or(TreeError::MissingNode(id)))
            .collect::<Result<Vec<Hash>, TreeError>>()?;
        Ok(self
            .parts
            .iter()
            .map(|part| fold_subtree(&hashes[part.nodes.clone()]).unwrap_or(EMPTY_ROOT))
            .collect())
    }

    /// Appends the path from node (`level`, `index`) to the root of the tree of
    /// `size` leaves: the sibling of each ancestor that has one, bottom-up.
    fn push_path(&mut self, level: u8, index: u64, size: u64) {
        let level = u32::from(level);
        let last = (size - 1) >> level;
        // Below `inner` the node and the last leaf are in different subtrees, so every
        // ancestor has a sibling (the rightmost one possibly imperfect); above it the
        // path runs along the right edge and only left siblings exist.
        let inner = u64::BITS - (index ^ last).leading_zeros();
        for l in 0..inner {
            let height = level + l;
            let sibling = (index >> l) ^ 1;
            let begin = sibling << height;
            let end = begin.checked_add(1 << height).map_or(size, |e| e.min(size));
            self.push_subtree(begin, end);
        }
        let mut ancestor = index.checked_shr(inner).unwrap_or(0);
        let mut height = level + inner;
        while ancestor != 0 {
            if ancestor & 1 == 1 {
                // `ancestor != 0` at `height` means the tree spans 2^height leaves or more.
                self.push_node(NodeId::new(height as u8, ancestor ^ 1));
            }
            ancestor >>= 1;
            height += 1;
        }
    }

    /// Appends a perfect node as one part.
    fn push_node(&mut self, id: NodeId) {
        let start = self.nodes.len();
        let leaves = id.leaves().unwrap_or(0..0);
        self.nodes.push(id);
        self.parts.push(Part {
            leaves,
            nodes: start..self.nodes.len(),
        });
    }

    /// Appends the subtree `[begin, end)` as one part.
    fn push_subtree(&mut self, begin: u64, end: u64) {
        let start = self.nodes.len();
        subtree_components(begin, end, &mut self.nodes);
        self.parts.push(Part {
            leaves: begin..end,
            nodes: start..self.nodes.len(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn subtrees(plan: &ProofPlan) -> Vec<Range<u64>> {
        plan.subtrees().collect()
    }

    #[test]
    fn inclusion_matches_rfc_example() {
        // RFC 6962 section 2.1.3: the path for d0 in the 7-leaf tree is [b, h, l].
        let plan = inclusion_plan(0, 7).unwrap();
        assert_eq!(subtrees(&plan), vec![1..2, 2..4, 4..7]);
        // ... for d3 it is [c, g, l]; for d4 it is [f, j, k]; for d6 it is [i, j].
        assert_eq!(
            subtrees(&inclusion_plan(3, 7).unwrap()),
            vec![2..3, 0..2, 4..7]
        );
        assert_eq!(
            subtrees(&inclusion_plan(4, 7).unwrap()),
            vec![5..6, 6..7, 0..4]
        );
        assert_eq!(subtrees(&inclusion_plan(6, 7).unwrap()), vec![4..6, 0..4]);
    }

    #[test]
    fn consistency_matches_rfc_example() {
        // RFC 6962 section 2.1.4: PROOF(3, D[7]) = [c, d, g, l], PROOF(4, D[7]) = [l],
        // PROOF(6, D[7]) = [i, j, k].
        assert_eq!(
            subtrees(&consistency_plan(3, 7).unwrap()),
            vec![2..3, 3..4, 0..2, 4..7]
        );
        assert_eq!(subtrees(&consistency_plan(4, 7).unwrap()), vec![4..7]);
        assert_eq!(
            subtrees(&consistency_plan(6, 7).unwrap()),
            vec![4..6, 6..7, 0..4]
        );
        assert!(consistency_plan(7, 7).unwrap().is_empty());
        assert_eq!(consistency_plan(0, 7), Err(TreeError::EmptyFirstTree));
        assert!(consistency_plan(8, 7).is_err());
    }

    #[test]
    fn imperfect_siblings_are_split_into_perfect_nodes() {
        let plan = inclusion_plan(0, 7).unwrap();
        assert_eq!(
            plan.nodes(),
            &[
                NodeId::new(0, 1),
                NodeId::new(1, 1),
                NodeId::new(1, 2),
                NodeId::new(0, 6)
            ]
        );
    }

    #[test]
    fn plans_name_each_node_once() {
        for size in 1..70u64 {
            for m in 0..size {
                let nodes = inclusion_plan(m, size).unwrap().nodes().to_vec();
                assert_eq!(nodes.iter().collect::<HashSet<_>>().len(), nodes.len());
                let nodes = consistency_plan(m + 1, size).unwrap().nodes().to_vec();
                assert_eq!(nodes.iter().collect::<HashSet<_>>().len(), nodes.len());
            }
        }
    }

    #[test]
    fn huge_trees_do_not_overflow() {
        let plan = inclusion_plan(u64::MAX - 1, u64::MAX).unwrap();
        assert_eq!(plan.len(), 63);
        let plan = inclusion_plan(0, u64::MAX).unwrap();
        assert_eq!(plan.len(), 64);
        let plan = consistency_plan(1 << 63, u64::MAX).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(root_plan(u64::MAX).nodes().len(), 64);
    }

    #[test]
    fn missing_nodes_are_reported() {
        let plan = inclusion_plan(2, 5).unwrap();
        let err = plan.assemble(|id| (id.level == 0).then_some([0; 32]));
        assert_eq!(err, Err(TreeError::MissingNode(NodeId::new(1, 0))));
    }

    #[test]
    fn root_plan_of_empty_tree_is_the_empty_root() {
        assert_eq!(root_plan(0).assemble(|_| None), Ok(vec![EMPTY_ROOT]));
    }
}
