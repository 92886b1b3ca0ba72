//! Known-answer tests for the tree: the transparency-dev/merkle inclusion and
//! consistency probes, the 8-leaf reference tree, and real Certificate Transparency
//! proofs (argon2020 and the 848049-of-3630887 audit path).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;

use sealgate_ledger::{
    consistency_plan, inclusion_plan, leaf_hash, root_plan, verify_consistency,
    verify_consistency_bytes, verify_inclusion, verify_inclusion_bytes, Frontier, Hash, NodeId,
    EMPTY_ROOT,
};

use crate::support::tlog_dir;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionProbe {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyProbe {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn b64(s: &str) -> Vec<u8> {
    STANDARD.decode(s).expect("test data is base64")
}

fn hash_b64(s: &str) -> Hash {
    b64(s).try_into().expect("a 32-byte hash")
}

fn hash_hex(s: &str) -> Hash {
    hex::decode(s)
        .expect("test data is hex")
        .try_into()
        .expect("a 32-byte hash")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("readable test data dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = fs::read_to_string(path).expect("readable test vector");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn transparency_dev_inclusion_probes_give_the_expected_verdict() {
    let Some(dir) = tlog_dir() else { return };
    let files = json_files(&dir.join("inclusion"));
    assert_eq!(files.len(), 98, "inclusion probe count changed");
    let mut accepted = 0;
    for path in &files {
        let probe: InclusionProbe = read_json(path);
        let proof: Vec<Vec<u8>> = probe.proof.iter().flatten().map(|p| b64(p)).collect();
        let verdict = verify_inclusion_bytes(
            &b64(&probe.leaf_hash),
            probe.leaf_idx,
            probe.tree_size,
            &proof,
            &b64(&probe.root),
        );
        assert_eq!(
            verdict.is_err(),
            probe.want_err,
            "{}: {} gave {verdict:?}",
            path.display(),
            probe.desc
        );
        accepted += usize::from(verdict.is_ok());
    }
    assert!(accepted >= 5, "only {accepted} probes accepted");
}

#[test]
fn transparency_dev_consistency_probes_give_the_expected_verdict() {
    let Some(dir) = tlog_dir() else { return };
    let files = json_files(&dir.join("consistency"));
    assert_eq!(files.len(), 98, "consistency probe count changed");
    let mut accepted = 0;
    for path in &files {
        let probe: ConsistencyProbe = read_json(path);
        let proof: Vec<Vec<u8>> = probe.proof.iter().flatten().map(|p| b64(p)).collect();
        let verdict = verify_consistency_bytes(
            probe.size1,
            probe.size2,
            &proof,
            &b64(&probe.root1),
            &b64(&probe.root2),
        );
        assert_eq!(
            verdict.is_err(),
            probe.want_err,
            "{}: {} gave {verdict:?}",
            path.display(),
            probe.desc
        );
        accepted += usize::from(verdict.is_ok());
    }
    assert!(accepted >= 5, "only {accepted} probes accepted");
}

#[derive(Debug, Deserialize)]
struct ReferenceTree {
    leaf_inputs_hex: Vec<String>,
    root_by_size_0_to_8: Vec<String>,
    node_hashes_by_level: Vec<Vec<String>>,
    hasher_vectors: HashMap<String, String>,
}

#[test]
fn reference_tree_roots_and_nodes_match() {
    let Some(dir) = tlog_dir() else { return };
    let tree: ReferenceTree = read_json(&dir.join("reference_tree_8_leaves.json"));
    assert_eq!(tree.root_by_size_0_to_8.len(), 9);

    let mut frontier = Frontier::new();
    let mut nodes = HashMap::new();
    assert_eq!(frontier.root(), hash_hex(&tree.root_by_size_0_to_8[0]));
    for (i, input) in tree.leaf_inputs_hex.iter().enumerate() {
        let leaf = leaf_hash(&hex::decode(input).expect("hex leaf input"));
        nodes.extend(frontier.append(leaf));
        let want = hash_hex(&tree.root_by_size_0_to_8[i + 1]);
        assert_eq!(frontier.root(), want, "root of size {}", i + 1);
        // The same root assembled from the stored nodes.
        let assembled = root_plan(frontier.size()).assemble(|id| nodes.get(&id).copied());
        assert_eq!(assembled, Ok(vec![want]));
    }

    let mut count = 0;
    for (level, hashes) in tree.node_hashes_by_level.iter().enumerate() {
        for (index, hash) in hashes.iter().enumerate() {
            let id = NodeId::new(level as u8, index as u64);
            assert_eq!(nodes.get(&id), Some(&hash_hex(hash)), "node {id}");
            count += 1;
        }
    }
    assert_eq!(count, 15);
    assert_eq!(nodes.len(), 15, "exactly the perfect nodes are persisted");

    let vectors = &tree.hasher_vectors;
    assert_eq!(EMPTY_ROOT, hash_hex(&vectors["empty_root"]));
    assert_eq!(leaf_hash(b""), hash_hex(&vectors["leaf('')"]));
    assert_eq!(leaf_hash(b"L123456"), hash_hex(&vectors["leaf('L123456')"]));
    // node('N123','N456') hashes 4-byte children; node_hash only takes 32-byte ones.
}

/// The proofs the reference tree's stored nodes give equal the probe files' happy paths.
#[test]
fn reference_tree_proofs_match_the_probe_happy_paths() {
    let Some(dir) = tlog_dir() else { return };
    let tree: ReferenceTree = read_json(&dir.join("reference_tree_8_leaves.json"));
    let mut frontier = Frontier::new();
    let mut nodes = HashMap::new();
    for input in &tree.leaf_inputs_hex {
        nodes.extend(frontier.append(leaf_hash(&hex::decode(input).expect("hex"))));
    }
    for n in 0..=4 {
        let path = dir.join(format!("inclusion/{n}/happy-path.json"));
        let probe: InclusionProbe = read_json(&path);
        if probe.tree_size > 8 {
            continue;
        }
        let plan = inclusion_plan(probe.leaf_idx, probe.tree_size).expect("plan");
        let proof = plan.assemble(|id| nodes.get(&id).copied()).expect("nodes");
        let want: Vec<Hash> = probe.proof.iter().flatten().map(|p| hash_b64(p)).collect();
        assert_eq!(proof, want, "{}", path.display());

        let path = dir.join(format!("consistency/{n}/happy-path.json"));
        let probe: ConsistencyProbe = read_json(&path);
        let plan = consistency_plan(probe.size1, probe.size2).expect("plan");
        let proof = plan.assemble(|id| nodes.get(&id).copied()).expect("nodes");
        let want: Vec<Hash> = probe.proof.iter().flatten().map(|p| hash_b64(p)).collect();
        assert_eq!(proof, want, "{}", path.display());
    }
}

#[derive(Debug, Deserialize)]
struct Sth {
    tree_size: u64,
    sha256_root_hash: String,
}

#[derive(Debug, Deserialize)]
struct AuditProof {
    leaf_index: u64,
    audit_path: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Consistency {
    consistency: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Entries {
    entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    leaf_input: String,
}

#[test]
fn ct_argon2020_inclusion_of_entry_10000_verifies() {
    let Some(dir) = tlog_dir() else { return };
    let dir = dir.join("ct-argon2020-recorded");
    let sth: Sth = read_json(&dir.join("get-sth"));
    assert_eq!(sth.tree_size, 961_984_011);
    let root = hash_b64(&sth.sha256_root_hash);
    // The file name is the request URL with `%` written as `-`.
    let url_hash = "nCs3mfIydh9x4CKyQ-2Bu2xtmpxmFggA5MLymHwNQSlLg-3D";
    let proof: AuditProof = read_json(&dir.join(format!(
        "get-proof-by-hash-tree-size-961984011-hash-{url_hash}"
    )));
    let entries: Entries = read_json(&dir.join("get-entries-start-10000-end-10000"));
    // The leaf hash in the request URL is the RFC 6962 hash of the recorded entry.
    let leaf = leaf_hash(&b64(&entries.entries[0].leaf_input));
    let requested = url_hash.replace("-2B", "+").replace("-3D", "=");
    assert_eq!(leaf, hash_b64(&requested));

    let path: Vec<Hash> = proof.audit_path.iter().map(|p| hash_b64(p)).collect();
    assert_eq!(proof.leaf_index, 10_000);
    assert_eq!(
        path.len(),
        inclusion_plan(10_000, sth.tree_size).expect("plan").len()
    );
    assert_eq!(
        verify_inclusion(&leaf, 10_000, sth.tree_size, &path, &root),
        Ok(())
    );

    assert!(verify_inclusion(&leaf, 10_001, sth.tree_size, &path, &root).is_err());
    assert!(verify_inclusion(&leaf, 10_000, sth.tree_size, &path[1..], &root).is_err());
    let mut tampered = path.clone();
    tampered[7][31] ^= 1;
    assert!(verify_inclusion(&leaf, 10_000, sth.tree_size, &tampered, &root).is_err());
}

#[test]
fn ct_argon2020_consistency_from_3654490_verifies() {
    let Some(dir) = tlog_dir() else { return };
    let dir = dir.join("ct-argon2020-recorded");
    let sth: Sth = read_json(&dir.join("get-sth"));
    let root2 = hash_b64(&sth.sha256_root_hash);
    let source = fs::read_to_string(dir.join("SOURCE.txt")).expect("SOURCE.txt");
    let marker = "old root for size 3654490 = ";
    let start = source.find(marker).expect("old root in SOURCE.txt") + marker.len();
    let old = source[start..].split_whitespace().next().expect("old root");
    let root1 = hash_b64(old);
    let proof: Consistency =
        read_json(&dir.join("get-sth-consistency-first-3654490-second-961984011"));
    let proof: Vec<Hash> = proof.consistency.iter().map(|p| hash_b64(p)).collect();
    assert_eq!(
        proof.len(),
        consistency_plan(3_654_490, sth.tree_size)
            .expect("plan")
            .len()
    );
    assert_eq!(
        verify_consistency(3_654_490, sth.tree_size, &proof, &root1, &root2),
        Ok(())
    );

    assert!(verify_consistency(3_654_491, sth.tree_size, &proof, &root1, &root2).is_err());
    assert!(verify_consistency(3_654_490, sth.tree_size, &proof, &root2, &root1).is_err());
    let mut tampered = proof.clone();
    tampered[0][0] ^= 0x80;
    assert!(verify_consistency(3_654_490, sth.tree_size, &tampered, &root1, &root2).is_err());
}

#[derive(Debug, Deserialize)]
struct CtInclusion {
    leaf_hash: String,
    leaf_index: u64,
    tree_size: u64,
    root: String,
    audit_path: Vec<String>,
}

#[test]
fn ct_inclusion_848049_of_3630887_verifies() {
    let Some(dir) = tlog_dir() else { return };
    let v: CtInclusion = read_json(&dir.join("inclusion_848049_of_3630887.json"));
    let path: Vec<Hash> = v.audit_path.iter().map(|p| hash_hex(p)).collect();
    assert_eq!(path.len(), 22);
    assert_eq!(
        path.len(),
        inclusion_plan(v.leaf_index, v.tree_size)
            .expect("plan")
            .len()
    );
    let (leaf, root) = (hash_hex(&v.leaf_hash), hash_hex(&v.root));
    assert_eq!(
        verify_inclusion(&leaf, v.leaf_index, v.tree_size, &path, &root),
        Ok(())
    );
    assert!(verify_inclusion(&leaf, v.leaf_index + 1, v.tree_size, &path, &root).is_err());
    assert!(verify_inclusion(&root, v.leaf_index, v.tree_size, &path, &leaf).is_err());
}
