//! sealgate-ledger: the cryptography of sealgate's append-only ledger, with no I/O.
//!
//! - [`hash`]: RFC 6962 leaf and node hashing.
//! - [`node`]: [`NodeId`], the perfect subtrees that stores persist.
//! - [`frontier`]: [`Frontier`], appending leaves and computing roots.
//! - [`proof`]: plans naming the stored nodes a proof needs, then assembling it.
//! - [`verify`]: RFC 9162 inclusion and consistency verification.
//! - [`replay`]: rebuilding the root from all entries, checking checkpoints on the way.
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies.
//! - [`note`]: C2SP signed notes with Ed25519.
//! - [`tiles`]: C2SP tlog-tiles paths, tile contents and entry bundles.
//!
//! Every error type is specific to its module. Stores, HTTP and the CLI build on
//! this crate; it depends on none of them.

pub mod checkpoint;
pub mod frontier;
pub mod hash;
pub mod node;
pub mod note;
pub mod proof;
pub mod replay;
pub mod tiles;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use frontier::Frontier;
pub use hash::{leaf_hash, node_hash, Hash, EMPTY_ROOT};
pub use node::NodeId;
pub use note::{open, KeyId, Note, NoteError, NoteSignature, NoteSigner, NoteVerifier};
pub use proof::{consistency_plan, inclusion_plan, root_plan, ProofPlan, TreeError};
pub use replay::{Replay, ReplayError, ReplaySummary};
pub use tiles::{Tile, TileError, TileKind, MAX_ENTRY_LEN};
pub use verify::{
    root_from_inclusion, verify_consistency, verify_consistency_bytes, verify_inclusion,
    verify_inclusion_bytes, VerifyError,
};
