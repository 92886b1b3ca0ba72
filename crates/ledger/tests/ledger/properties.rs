//! Properties of the tree: the frontier agrees with the recursive RFC 6962
//! definition; every proof assembled from the persisted nodes verifies and matches
//! the RFC's PATH / SUBPROOF; tampering with a proof, root, leaf or index makes
//! verification fail; and tampering with a tree size fails exactly when the new
//! size changes the shape of the proof (see `size_flips_*` below).

use std::collections::HashMap;
use std::ops::Range;

use proptest::prelude::*;

use sealgate_ledger::{
    consistency_plan, inclusion_plan, leaf_hash, root_plan, verify_consistency, verify_inclusion,
    Frontier, Hash, NodeId, Replay, ReplayError,
};

use crate::support::{naive_path, naive_root, naive_subproof};

/// A tree built by appending `size` distinct leaves, with every node it persisted.
struct Tree {
    leaves: Vec<Hash>,
    nodes: HashMap<NodeId, Hash>,
    frontier: Frontier,
}

impl Tree {
    fn new(size: u64, seed: u64) -> Self {
        let mut frontier = Frontier::new();
        let mut nodes = HashMap::new();
        let mut leaves = Vec::new();
        for i in 0..size {
            let leaf = leaf_hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat());
            leaves.push(leaf);
            for (id, hash) in frontier.append(leaf) {
                assert!(
                    nodes.insert(id, hash).is_none(),
                    "node {id} persisted twice"
                );
            }
        }
        Self {
            leaves,
            nodes,
            frontier,
        }
    }

    fn node(&self, id: NodeId) -> Option<Hash> {
        self.nodes.get(&id).copied()
    }

    fn root(&self, size: u64) -> Hash {
        root_plan(size).assemble(|id| self.node(id)).expect("nodes")[0]
    }

    fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        let plan = inclusion_plan(index, size).expect("plan");
        plan.assemble(|id| self.node(id)).expect("nodes")
    }

    fn consistency(&self, size1: u64, size2: u64) -> Vec<Hash> {
        let plan = consistency_plan(size1, size2).expect("plan");
        plan.assemble(|id| self.node(id)).expect("nodes")
    }
}

/// Which side each proof hash joins on (true: left of the path), or `None` if no
/// proof exists. The RFC 9162 verifier's computation depends only on this.
fn inclusion_shape(index: u64, size: u64) -> Option<Vec<bool>> {
    let plan = inclusion_plan(index, size).ok()?;
    Some(plan.subtrees().map(|r| r.end <= index).collect())
}

/// Like [`inclusion_shape`] for consistency: whether the first root starts the walk
/// (`size1` a power of two), and the side each hash after the start joins on.
fn consistency_shape(size1: u64, size2: u64) -> Option<(bool, Vec<bool>)> {
    let plan = consistency_plan(size1, size2).ok()?;
    let ranges: Vec<Range<u64>> = plan.subtrees().collect();
    let starts_with_root1 = size1.is_power_of_two() || ranges.is_empty();
    let rest = if starts_with_root1 {
        &ranges[..]
    } else {
        &ranges[1..]
    };
    Some((
        starts_with_root1,
        rest.iter().map(|r| r.end <= size1).collect(),
    ))
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut h = *hash;
    h[bit / 8] ^= 1 << (bit % 8);
    h
}

fn check_inclusion(tree: &Tree, index: u64, size: u64, bit: usize) {
    let root = tree.root(size);
    let leaf = tree.leaves[index as usize];
    let proof = tree.inclusion(index, size);
    assert_eq!(
        verify_inclusion(&leaf, index, size, &proof, &root),
        Ok(()),
        "inclusion {index} in {size}"
    );
    let ranges: Vec<Range<u64>> = inclusion_plan(index, size)
        .expect("plan")
        .subtrees()
        .collect();
    assert_eq!(ranges, naive_path(index, 0..size), "PATH({index}, {size})");

    for i in 0..proof.len() {
        let mut bad = proof.clone();
        bad[i] = flip(&bad[i], (bit + i * 37) % 256);
        assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
    }
    assert!(verify_inclusion(&leaf, index, size, &proof, &flip(&root, bit)).is_err());
    assert!(verify_inclusion(&flip(&leaf, bit), index, size, &proof, &root).is_err());
    if let Some((_, shorter)) = proof.split_last() {
        assert!(verify_inclusion(&leaf, index, size, shorter, &root).is_err());
    }
    let longer = [proof.clone(), vec![leaf]].concat();
    assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());

    for b in 0..64 {
        let other = index ^ (1 << b);
        assert!(
            verify_inclusion(&leaf, other, size, &proof, &root).is_err(),
            "index {index} -> {other} in {size}"
        );
        // A size with the same proof shape is indistinguishable to the RFC 9162
        // algorithm (the signed checkpoint binds size and root); any other fails.
        let other = size ^ (1 << b);
        let same_shape = inclusion_shape(index, other) == inclusion_shape(index, size);
        assert_eq!(
            verify_inclusion(&leaf, index, other, &proof, &root).is_ok(),
            same_shape,
            "size {size} -> {other} for index {index}"
        );
    }
}

fn check_consistency(tree: &Tree, size1: u64, size2: u64, bit: usize) {
    let (root1, root2) = (tree.root(size1), tree.root(size2));
    let proof = tree.consistency(size1, size2);
    assert_eq!(
        verify_consistency(size1, size2, &proof, &root1, &root2),
        Ok(()),
        "consistency {size1} -> {size2}"
    );
    let ranges: Vec<Range<u64>> = consistency_plan(size1, size2)
        .expect("plan")
        .subtrees()
        .collect();
    assert_eq!(
        ranges,
        naive_subproof(size1, 0..size2, true),
        "PROOF({size1}, {size2})"
    );

    for i in 0..proof.len() {
        let mut bad = proof.clone();
        bad[i] = flip(&bad[i], (bit + i * 37) % 256);
        assert!(verify_consistency(size1, size2, &bad, &root1, &root2).is_err());
    }
    let (bad1, bad2) = (flip(&root1, bit), flip(&root2, bit));
    assert!(verify_consistency(size1, size2, &proof, &bad1, &root2).is_err());
    assert!(verify_consistency(size1, size2, &proof, &root1, &bad2).is_err());
    if let Some((_, shorter)) = proof.split_last() {
        assert!(verify_consistency(size1, size2, shorter, &root1, &root2).is_err());
    }
    let longer = [proof.clone(), vec![root1]].concat();
    assert!(verify_consistency(size1, size2, &longer, &root1, &root2).is_err());

    let shape = consistency_shape(size1, size2);
    for b in 0..64 {
        for (s1, s2) in [(size1 ^ (1 << b), size2), (size1, size2 ^ (1 << b))] {
            let same_shape = consistency_shape(s1, s2) == shape;
            assert_eq!(
                verify_consistency(s1, s2, &proof, &root1, &root2).is_ok(),
                same_shape,
                "sizes {size1},{size2} -> {s1},{s2}"
            );
        }
    }
}

#[test]
fn every_proof_of_small_trees_verifies() {
    let tree = Tree::new(64, 1);
    for size in 1..=64 {
        assert_eq!(tree.root(size), naive_root(&tree.leaves[..size as usize]));
        for index in 0..size {
            check_inclusion(&tree, index, size, (index * 7 + size) as usize % 256);
        }
        for size1 in 1..=size {
            check_consistency(&tree, size1, size, (size1 * 11 + size) as usize % 256);
        }
    }
}

#[test]
fn size_flips_can_keep_the_proof_shape() {
    // Documented limit of RFC 9162 inclusion verification: a proof for index 0 in a
    // tree of 5 has the same shape in a tree of 7 (sizes 101 and 111 in binary), so
    // it verifies against the same root. Checkpoint signatures bind size and root.
    let tree = Tree::new(5, 2);
    let proof = tree.inclusion(0, 5);
    let root = tree.root(5);
    assert_eq!(
        verify_inclusion(&tree.leaves[0], 0, 7, &proof, &root),
        Ok(())
    );
    assert_eq!(inclusion_shape(0, 5), inclusion_shape(0, 7));
}

#[test]
fn frontier_reloaded_from_stored_nodes_continues_identically() {
    let tree = Tree::new(300, 3);
    for size in [0u64, 1, 2, 3, 7, 64, 255, 256, 257, 299] {
        assert_eq!(Frontier::node_ids(size), root_plan(size).nodes());
        let hashes: Vec<Hash> = Frontier::node_ids(size)
            .into_iter()
            .map(|id| tree.node(id).expect("stored node"))
            .collect();
        let mut reloaded = Frontier::from_nodes(size, hashes).expect("frontier");
        assert_eq!(reloaded.root(), tree.root(size));
        for &leaf in &tree.leaves[size as usize..] {
            for (id, hash) in reloaded.append(leaf) {
                assert_eq!(
                    tree.node(id),
                    Some(hash),
                    "node {id} after reload at {size}"
                );
            }
        }
        assert_eq!(reloaded, tree.frontier);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn frontier_root_is_the_rfc_root(size in 0u64..3000, seed: u64) {
        let tree = Tree::new(size, seed);
        let want = naive_root(&tree.leaves);
        prop_assert_eq!(tree.frontier.root(), want);
        prop_assert_eq!(tree.root(size), want);
        // Exactly the perfect nodes are persisted: 2n - popcount(n).
        prop_assert_eq!(
            tree.nodes.len() as u64,
            2 * size - u64::from(size.count_ones())
        );
    }

    #[test]
    fn proofs_from_stored_nodes_verify_and_tampering_fails(
        size in 1u64..3000,
        seed: u64,
        picks in proptest::collection::vec((any::<u64>(), any::<u64>(), 0usize..256), 8),
    ) {
        let tree = Tree::new(size, seed);
        for (a, b, bit) in picks {
            check_inclusion(&tree, a % size, size, bit);
            let size2 = 1 + b % size;
            let size1 = 1 + a % size2;
            check_consistency(&tree, size1, size2, bit);
        }
    }

    #[test]
    fn replay_catches_the_first_changed_entry(
        size in 1u64..2000,
        seed: u64,
        checkpoint_sizes in proptest::collection::vec(any::<u64>(), 1..6),
        changed in any::<u64>(),
    ) {
        let tree = Tree::new(size, seed);
        let checkpoints: Vec<(u64, Hash)> = checkpoint_sizes
            .iter()
            .map(|s| s % (size + 1))
            .map(|s| (s, tree.root(s)))
            .collect();

        let mut replay = Replay::new(checkpoints.clone()).expect("size-0 roots match");
        for leaf in &tree.leaves {
            replay.push_leaf(*leaf).expect("honest replay");
        }
        let summary = replay.finish().expect("all checkpoints reached");
        prop_assert_eq!(summary.checkpoints, checkpoints.len());
        prop_assert_eq!(summary.root, tree.frontier.root());

        let changed = changed % size;
        let first_covering = checkpoints.iter().map(|c| c.0).filter(|&s| s > changed).min();
        let mut replay = Replay::new(checkpoints).expect("size-0 roots match");
        let mut failure = None;
        for (i, leaf) in tree.leaves.iter().enumerate() {
            let leaf = if i as u64 == changed { flip(leaf, 0) } else { *leaf };
            if let Err(e) = replay.push_leaf(leaf) {
                failure = Some(e);
                break;
            }
        }
        match (failure, first_covering) {
            (Some(ReplayError::RootMismatch { size, .. }), Some(at)) => prop_assert_eq!(size, at),
            (None, None) => {}
            (failure, at) => prop_assert!(false, "failure {:?} but first covering checkpoint {:?}", failure, at),
        }
    }
}
