//! Offline verification by replay: rebuild the root from every entry in order and
//! compare it with each stored checkpoint as the tree passes that checkpoint's
//! size. Holds only a [`Frontier`] (O(log n) memory); reading entries and
//! checkpoints from a store is the caller's job.

use crate::frontier::Frontier;
use crate::hash::{leaf_hash, Hash};

/// Why a replay failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The rebuilt root at a checkpoint's size differs from the checkpoint's root:
    /// some entry at an index below `size` was changed, or the checkpoint was.
    #[error("root at tree size {size} does not match the checkpoint")]
    RootMismatch {
        /// Tree size of the checkpoint.
        size: u64,
        /// Root the checkpoint states.
        expected: Hash,
        /// Root rebuilt from the entries.
        rebuilt: Hash,
    },
    /// A checkpoint names more entries than were replayed.
    #[error("checkpoint at tree size {checkpoint} is beyond the {replayed} replayed entries")]
    CheckpointBeyondEnd {
        /// Tree size of the checkpoint.
        checkpoint: u64,
        /// Entries replayed.
        replayed: u64,
    },
}

/// Outcome of a successful replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Entries replayed.
    pub size: u64,
    /// Root of the replayed tree.
    pub root: Hash,
    /// Checkpoints whose roots matched.
    pub checkpoints: usize,
}

/// Rebuilds the tree entry by entry and checks each expected `(size, root)` as the
/// tree reaches that size.
#[derive(Debug, Clone)]
pub struct Replay {
    frontier: Frontier,
    /// Expected roots, sorted by size, largest first (so the next is at the end).
    expected: Vec<(u64, Hash)>,
    /// Size of the next expected root, cached for the hot loop (`u64::MAX` if none).
    next: u64,
    matched: usize,
}

impl Replay {
    /// A replay from the empty tree that will check `checkpoints` (tree size and
    /// root pairs, in any order). Checkpoints of size 0 are checked at once.
    pub fn new(checkpoints: impl IntoIterator<Item = (u64, Hash)>) -> Result<Self, ReplayError> {
        let mut expected: Vec<(u64, Hash)> = checkpoints.into_iter().collect();
        expected.sort_unstable_by_key(|&(size, _)| std::cmp::Reverse(size));
        let mut replay = Self {
            frontier: Frontier::new(),
            expected,
            next: u64::MAX,
            matched: 0,
        };
        replay.check_due()?;
        Ok(replay)
    }

    /// Hashes and appends the next entry, checking any checkpoint at the new size.
    #[inline]
    pub fn push_entry(&mut self, entry: &[u8]) -> Result<(), ReplayError> {
        self.push_leaf(leaf_hash(entry))
    }

    /// Appends the next leaf hash, checking any checkpoint at the new size.
    #[inline]
    pub fn push_leaf(&mut self, leaf: Hash) -> Result<(), ReplayError> {
        self.frontier.push(leaf);
        if self.frontier.size() == self.next {
            self.check_due()?;
        }
        Ok(())
    }

    /// Entries replayed so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Root of the entries replayed so far.
    #[must_use]
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Checkpoints matched so far.
    #[must_use]
    pub fn checkpoints_matched(&self) -> usize {
        self.matched
    }

    /// Ends the replay; fails if a checkpoint lies beyond the replayed entries.
    pub fn finish(self) -> Result<ReplaySummary, ReplayError> {
        if let Some(&(checkpoint, _)) = self.expected.last() {
            return Err(ReplayError::CheckpointBeyondEnd {
                checkpoint,
                replayed: self.frontier.size(),
            });
        }
        Ok(ReplaySummary {
            size: self.frontier.size(),
            root: self.frontier.root(),
            checkpoints: self.matched,
        })
    }

    /// Checks every expected root at the current size and caches the next size.
    fn check_due(&mut self) -> Result<(), ReplayError> {
        let size = self.frontier.size();
        let mut rebuilt = None;
        while let Some(&(at, expected)) = self.expected.last() {
            if at != size {
                break;
            }
            let root = *rebuilt.get_or_insert_with(|| self.frontier.root());
            if root != expected {
                return Err(ReplayError::RootMismatch {
                    size,
                    expected,
                    rebuilt: root,
                });
            }
            self.expected.pop();
            self.matched += 1;
        }
        self.next = self.expected.last().map_or(u64::MAX, |&(at, _)| at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::EMPTY_ROOT;

    fn root_of(entries: &[&[u8]]) -> Hash {
        let mut f = Frontier::new();
        entries.iter().for_each(|e| f.push_entry(e));
        f.root()
    }

    #[test]
    fn checkpoints_are_checked_as_they_pass() {
        let entries: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
        let mut replay = Replay::new([
            (4, root_of(&entries)),
            (0, EMPTY_ROOT),
            (2, root_of(&entries[..2])),
            (2, root_of(&entries[..2])),
        ])
        .unwrap();
        for e in entries {
            replay.push_entry(e).unwrap();
        }
        let summary = replay.finish().unwrap();
        assert_eq!(summary.checkpoints, 4);
        assert_eq!(summary.size, 4);
    }

    #[test]
    fn a_changed_entry_is_caught_at_the_next_checkpoint() {
        let mut replay = Replay::new([(2, root_of(&[b"a", b"b"]))]).unwrap();
        replay.push_entry(b"a").unwrap();
        assert!(matches!(
            replay.push_entry(b"B"),
            Err(ReplayError::RootMismatch { size: 2, .. })
        ));
    }

    #[test]
    fn checkpoint_beyond_the_end_fails() {
        let mut replay = Replay::new([(3, EMPTY_ROOT)]).unwrap();
        replay.push_entry(b"a").unwrap();
        assert_eq!(
            replay.finish(),
            Err(ReplayError::CheckpointBeyondEnd {
                checkpoint: 3,
                replayed: 1
            })
        );
        assert!(Replay::new([(0, [1; 32])]).is_err());
    }
}
