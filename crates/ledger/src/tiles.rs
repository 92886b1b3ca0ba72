//! C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>) addressing and encodings: tile
//! paths (`tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`) both ways, the
//! perfect nodes a hash tile holds, and the entry-bundle and hash-tile byte formats.
//! Serving and fetching tiles is someone else's job.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::hash::Hash;
use crate::node::NodeId;

/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u16 = 256;
/// The longest entry an entry bundle can hold (its length is a big-endian u16), so
/// the longest entry the ledger accepts.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;
/// Tree levels spanned by one tile level: level-`L` tiles hold nodes of tree level `8L`.
pub const TILE_HEIGHT: u8 = 8;
/// Highest tile level a path may name.
pub const MAX_TILE_LEVEL: u8 = 63;

/// Why a tile path, tile or bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// The path is not a canonical tile path.
    #[error("malformed tile path: {0}")]
    MalformedPath(&'static str),
    /// Width outside 1..=256 or level outside 0..=63.
    #[error("tile width must be 1..=256 and level 0..=63")]
    OutOfRange,
    /// The tile lies beyond a tree of 2^64 leaves.
    #[error("tile lies beyond the largest possible tree")]
    TooLarge,
    /// An entry of more than 65535 bytes cannot go into a bundle.
    #[error("entry of {0} bytes is too long for an entry bundle")]
    EntryTooLong(usize),
    /// A bundle or hash tile ends in the middle of an item.
    #[error("truncated tile data")]
    Truncated,
    /// A hash tile has the wrong number of bytes for its width.
    #[error("hash tile has {got} bytes, expected {expected}")]
    WrongLength {
        /// Bytes expected.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
}

/// What a tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// Merkle tree hashes at tree level `8 * level`.
    Hashes {
        /// Tile level, 0..=63.
        level: u8,
    },
    /// Log entries (an entry bundle), aligned with level-0 hash tiles.
    Entries,
}

/// A hash tile or an entry bundle: kind, index within its level, width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    kind: TileKind,
    index: u64,
    width: u16,
}

impl Tile {
    /// Hash tile `index` of `level` holding `width` hashes (256 for a full tile).
    pub fn hashes(level: u8, index: u64, width: u16) -> Result<Self, TileError> {
        if level > MAX_TILE_LEVEL {
            return Err(TileError::OutOfRange);
        }
        Self::checked(TileKind::Hashes { level }, index, width)
    }

    /// Entry bundle `index` holding `width` entries (256 for a full bundle).
    pub fn entries(index: u64, width: u16) -> Result<Self, TileError> {
        Self::checked(TileKind::Entries, index, width)
    }

    fn checked(kind: TileKind, index: u64, width: u16) -> Result<Self, TileError> {
        if width == 0 || width > TILE_WIDTH {
            return Err(TileError::OutOfRange);
        }
        Ok(Self { kind, index, width })
    }

    /// The tile with `index` of `kind` as published for a tree of `tree_size`
    /// leaves: full, partial, or `None` if it would be empty.
    #[must_use]
    pub fn for_tree(kind: TileKind, index: u64, tree_size: u64) -> Option<Self> {
        let level = match kind {
            TileKind::Hashes { level } if level <= MAX_TILE_LEVEL => level,
            TileKind::Hashes { .. } => return None,
            TileKind::Entries => 0,
        };
        // Number of hashes at tree level 8*level.
        let count = tree_size
            .checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
            .unwrap_or(0);
        let start = index.checked_mul(u64::from(TILE_WIDTH))?;
        let available = count.checked_sub(start)?;
        // `min` bounds the width by 256, so it fits in u16.
        let width = available.min(u64::from(TILE_WIDTH)) as u16;
        (width > 0).then_some(Self { kind, index, width })
    }

    /// What the tile holds.
    #[must_use]
    pub fn kind(&self) -> TileKind {
        self.kind
    }

    /// Index within its level.
    #[must_use]
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Number of hashes or entries, 1..=256.
    #[must_use]
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether the tile holds fewer than 256 items.
    #[must_use]
    pub fn is_partial(&self) -> bool {
        self.width < TILE_WIDTH
    }

    /// The tree level of the nodes the tile holds (0 for entry bundles, whose
    /// entries hash to level-0 nodes), or `None` past level 63.
    #[must_use]
    pub fn tree_level(&self) -> Option<u8> {
        match self.kind {
            TileKind::Hashes { level } => level.checked_mul(TILE_HEIGHT).filter(|&l| l < 64),
            TileKind::Entries => Some(0),
        }
    }

    /// The perfect nodes the tile holds, left to right: for a level-`L` hash tile,
    /// nodes `256N .. 256N + W` at tree level `8L`; for an entry bundle, the leaves
    /// its entries hash to.
    pub fn node_ids(&self) -> Result<Vec<NodeId>, TileError> {
        let level = self.tree_level().ok_or(TileError::TooLarge)?;
        let first = self
            .index
            .checked_mul(u64::from(TILE_WIDTH))
            .ok_or(TileError::TooLarge)?;
        let last = NodeId::new(level, first + u64::from(self.width) - 1);
        if last.leaves().is_none() {
            return Err(TileError::TooLarge);
        }
        Ok((0..u64::from(self.width))
            .map(|i| NodeId::new(level, first + i))
            .collect())
    }

    /// The log entries the tile spans, or `None` past 2^64 leaves.
    #[must_use]
    pub fn leaves(&self) -> Option<Range<u64>> {
        let nodes = self.node_ids().ok()?;
        let first = nodes.first()?.leaves()?;
        let last = nodes.last()?.leaves()?;
        Some(first.start..last.end)
    }

    /// Whether every item of the tile exists in a tree of `tree_size` leaves.
    #[must_use]
    pub fn fits(&self, tree_size: u64) -> bool {
        self.leaves().is_some_and(|leaves| leaves.end <= tree_size)
    }

    /// The tile path, e.g. `tile/0/x001/x234/067.p/5` or `tile/entries/000`.
    #[must_use]
    pub fn path(&self) -> String {
        self.to_string()
    }

    /// Parses a canonical tile path (without prefix or leading slash).
    pub fn parse(path: &str) -> Result<Self, TileError> {
        let rest = path
            .strip_prefix("tile/")
            .ok_or(TileError::MalformedPath("must start with tile/"))?;
        let (level, rest) = rest
            .split_once('/')
            .ok_or(TileError::MalformedPath("missing tile index"))?;
        let kind = if level == "entries" {
            TileKind::Entries
        } else {
            let level =
                parse_decimal(level).ok_or(TileError::MalformedPath("level is not a decimal"))?;
            let level = u8::try_from(level).map_err(|_| TileError::OutOfRange)?;
            if level > MAX_TILE_LEVEL {
                return Err(TileError::OutOfRange);
            }
            TileKind::Hashes { level }
        };
        let (index, width) = match rest.split_once(".p/") {
            Some((index, width)) => {
                let width = parse_decimal(width)
                    .ok_or(TileError::MalformedPath("width is not a decimal"))?;
                match u16::try_from(width) {
                    Ok(w) if (1..TILE_WIDTH).contains(&w) => (index, w),
                    // A full tile's path has no `.p/256`: one tile, one path.
                    _ => {
                        return Err(TileError::MalformedPath(
                            "a partial tile's width must be 1..=255",
                        ))
                    }
                }
            }
            None => (rest, TILE_WIDTH),
        };
        let index = parse_index(index)?;
        Self::checked(kind, index, width)
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TileKind::Hashes { level } => write!(f, "tile/{level}/")?,
            TileKind::Entries => write!(f, "tile/entries/")?,
        }
        let mut groups = Vec::new();
        let mut n = self.index;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        for (i, group) in groups.iter().rev().enumerate() {
            if i + 1 < groups.len() {
                write!(f, "x{group:03}/")?;
            } else {
                write!(f, "{group:03}")?;
            }
        }
        if self.is_partial() {
            write!(f, ".p/{}", self.width)?;
        }
        Ok(())
    }
}

impl FromStr for Tile {
    type Err = TileError;

    fn from_str(path: &str) -> Result<Self, TileError> {
        Self::parse(path)
    }
}

/// A decimal with no sign and no leading zeros.
fn parse_decimal(s: &str) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s.len() == 1 || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// `x001/x234/067`: 3-digit groups, all but the last prefixed with `x`, and no
/// leading `x000` group.
fn parse_index(s: &str) -> Result<u64, TileError> {
    let groups: Vec<&str> = s.split('/').collect();
    let Some((last, prefix)) = groups.split_last() else {
        return Err(TileError::MalformedPath("empty index"));
    };
    if prefix.first() == Some(&"x000") {
        return Err(TileError::MalformedPath("index has leading zero groups"));
    }
    let mut index = 0u64;
    for group in prefix {
        let digits = group
            .strip_prefix('x')
            .ok_or(TileError::MalformedPath("index group must start with x"))?;
        index = push_group(index, digits)?;
    }
    push_group(index, last)
}

fn push_group(index: u64, digits: &str) -> Result<u64, TileError> {
    if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TileError::MalformedPath("index groups are three digits"));
    }
    let group: u64 = digits
        .parse()
        .map_err(|_| TileError::MalformedPath("index groups are three digits"))?;
    index
        .checked_mul(1000)
        .and_then(|i| i.checked_add(group))
        .ok_or(TileError::TooLarge)
}

/// Encodes entries as an entry bundle: each as a big-endian u16 length and its bytes.
pub fn encode_bundle<I, E>(entries: I) -> Result<Vec<u8>, TileError>
where
    I: IntoIterator<Item = E>,
    E: AsRef<[u8]>,
{
    let mut bundle = Vec::new();
    for entry in entries {
        let entry = entry.as_ref();
        let len = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLong(entry.len()))?;
        bundle.extend_from_slice(&len.to_be_bytes());
        bundle.extend_from_slice(entry);
    }
    Ok(bundle)
}

/// Splits an entry bundle into its entries. The caller checks the count against
/// the tile width.
pub fn decode_bundle(mut bundle: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut entries = Vec::new();
    while let Some((len, rest)) = bundle.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return Err(TileError::Truncated);
        }
        let (entry, rest) = rest.split_at(len);
        entries.push(entry);
        bundle = rest;
    }
    if bundle.is_empty() {
        Ok(entries)
    } else {
        Err(TileError::Truncated)
    }
}

/// The bytes of a hash tile: its hashes concatenated.
#[must_use]
pub fn encode_hash_tile(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

/// Splits a hash tile of `width` hashes into its hashes.
pub fn decode_hash_tile(bytes: &[u8], width: u16) -> Result<Vec<Hash>, TileError> {
    let expected = usize::from(width) * 32;
    if bytes.len() != expected {
        return Err(TileError::WrongLength {
            expected,
            got: bytes.len(),
        });
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|chunk| {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(chunk);
            hash
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_spec_examples() {
        let t = Tile::hashes(0, 1_234_067, 256).unwrap();
        assert_eq!(t.path(), "tile/0/x001/x234/067");
        assert_eq!(Tile::hashes(1, 5, 17).unwrap().path(), "tile/1/005.p/17");
        assert_eq!(Tile::entries(0, 256).unwrap().path(), "tile/entries/000");
        assert_eq!(
            Tile::entries(1000, 3).unwrap().path(),
            "tile/entries/x001/000.p/3"
        );
        assert_eq!(
            Tile::hashes(63, u64::MAX, 256).unwrap().path(),
            "tile/63/x018/x446/x744/x073/x709/x551/615"
        );
    }

    #[test]
    fn paths_parse_back() {
        for tile in [
            Tile::hashes(0, 1_234_067, 256).unwrap(),
            Tile::hashes(2, 0, 1).unwrap(),
            Tile::hashes(63, u64::MAX, 255).unwrap(),
            Tile::entries(999, 256).unwrap(),
            Tile::entries(1000, 42).unwrap(),
        ] {
            assert_eq!(tile.path().parse::<Tile>(), Ok(tile));
        }
    }

    #[test]
    fn non_canonical_paths_are_refused() {
        for bad in [
            "tile/0/1",
            "tile/0/0001",
            "tile/00/000",
            "tile/64/000",
            "tile/-1/000",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/x01/002",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/05",
            "tile/0/000.p/",
            "tile/0/000/",
            "tile/0/",
            "tile/entries/",
            "tile/data/000",
            "/tile/0/000",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
        ] {
            assert!(Tile::parse(bad).is_err(), "{bad} parsed");
        }
        for wide in ["tile/0/000.p/0", "tile/0/000.p/256"] {
            let why = Tile::parse(wide).err().map(|e| e.to_string());
            assert!(
                why.as_deref().is_some_and(|w| w.contains("1..=255")),
                "{why:?}"
            );
        }
    }

    #[test]
    fn tiles_hold_nodes_eight_levels_apart() {
        let t = Tile::hashes(1, 2, 3).unwrap();
        assert_eq!(
            t.node_ids().unwrap(),
            vec![
                NodeId::new(8, 512),
                NodeId::new(8, 513),
                NodeId::new(8, 514)
            ]
        );
        assert_eq!(t.leaves(), Some(512 * 256..515 * 256));
        assert!(Tile::hashes(8, 0, 1).unwrap().node_ids().is_err());
        assert_eq!(
            Tile::hashes(7, 0, 1).unwrap().node_ids().unwrap(),
            vec![NodeId::new(56, 0)]
        );
    }

    #[test]
    fn tree_of_70000_has_the_spec_tiles() {
        let size = 70_000;
        let level0 = |i| Tile::for_tree(TileKind::Hashes { level: 0 }, i, size);
        assert_eq!(level0(272).map(|t| t.width()), Some(256));
        assert_eq!(level0(273).map(|t| t.width()), Some(112));
        assert_eq!(level0(274), None);
        let level1 = |i| Tile::for_tree(TileKind::Hashes { level: 1 }, i, size);
        assert_eq!(level1(0).map(|t| t.width()), Some(256));
        assert_eq!(level1(1).map(|t| t.width()), Some(17));
        let level2 = Tile::for_tree(TileKind::Hashes { level: 2 }, 0, size);
        assert_eq!(level2.map(|t| t.width()), Some(1));
        assert_eq!(Tile::for_tree(TileKind::Hashes { level: 3 }, 0, size), None);
        assert!(level0(273).unwrap().fits(size));
        assert!(!Tile::hashes(0, 273, 256).unwrap().fits(size));
    }

    #[test]
    fn bundles_round_trip() {
        let entries: Vec<&[u8]> = vec![b"", b"a", &[7u8; 300]];
        let bundle = encode_bundle(&entries).unwrap();
        assert_eq!(&bundle[..3], &[0, 0, 0]);
        assert_eq!(decode_bundle(&bundle).unwrap(), entries);
        assert_eq!(
            decode_bundle(&bundle[..bundle.len() - 1]),
            Err(TileError::Truncated)
        );
        assert_eq!(decode_bundle(&[0]), Err(TileError::Truncated));
        assert_eq!(
            encode_bundle([vec![0u8; 65_536]]),
            Err(TileError::EntryTooLong(65_536))
        );
    }

    #[test]
    fn hash_tiles_round_trip() {
        let hashes = vec![[1u8; 32], [2u8; 32]];
        let bytes = encode_hash_tile(&hashes);
        assert_eq!(decode_hash_tile(&bytes, 2).unwrap(), hashes);
        assert!(decode_hash_tile(&bytes, 3).is_err());
    }
}
