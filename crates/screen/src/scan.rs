//! Byte-scanning helpers shared by normalisation, the injection matcher and
//! the secret gates: the length of an ASCII prefix, finding a byte or an
//! ASCII digit eight bytes at a time, and finding long runs of a byte class
//! while probing only one byte per run length in text without such runs.
//!
//! Pure functions over `&[u8]`; they know nothing about detectors.

/// Loads eight bytes as a little-endian word.
fn word(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    u64::from_le_bytes(w)
}

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte of the result is set for bytes of `w` below `n`
/// (`n` ≤ 128); the lowest set byte is exact, higher ones may be spurious.
fn bytes_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(LOW * u64::from(n)) & !w & HIGH
}

/// Length of the ASCII prefix of `bytes`.
pub(crate) fn ascii_prefix_len(bytes: &[u8]) -> usize {
    let mut i = 0;
    for chunk in bytes.chunks_exact(8) {
        if word(chunk) & HIGH != 0 {
            break;
        }
        i += 8;
    }
    while i < bytes.len() && bytes[i].is_ascii() {
        i += 1;
    }
    i
}

/// Offset of the first `needle` in `bytes`.
pub(crate) fn find_byte(needle: u8, bytes: &[u8]) -> Option<usize> {
    let splat = LOW * u64::from(needle);
    let mut i = 0;
    for chunk in bytes.chunks_exact(8) {
        let hit = bytes_below(word(chunk) ^ splat, 1);
        if hit != 0 {
            return Some(i + hit.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    bytes[i..].iter().position(|b| *b == needle).map(|k| i + k)
}

/// Offset of the first ASCII digit in `bytes`.
pub(crate) fn find_digit(bytes: &[u8]) -> Option<usize> {
    find_digit_or(bytes, &[])
}

/// Offset of the first ASCII digit or byte of `extra` in `bytes`.
pub(crate) fn find_digit_or(bytes: &[u8], extra: &[u8]) -> Option<usize> {
    let zeros = LOW * u64::from(b'0');
    let mut i = 0;
    for chunk in bytes.chunks_exact(8) {
        let w = word(chunk);
        // XOR with '0' maps only 0x30..=0x39 below 10.
        let mut hit = bytes_below(w ^ zeros, 10);
        for &x in extra {
            hit |= bytes_below(w ^ (LOW * u64::from(x)), 1);
        }
        if hit != 0 {
            // Each term's lowest flag is exact, so the lowest of all is.
            return Some(i + hit.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|b| b.is_ascii_digit() || extra.contains(b))
        .map(|k| i + k)
}

/// Calls `f(start, end)` for every maximal run `bytes[start..end]` of bytes
/// in `class` that is at least `min_len` long, in order, until `f` returns
/// false. Where runs are short it looks at about one byte in `min_len`: a
/// run that long must cover the byte `min_len - 1` after any run boundary.
pub(crate) fn long_runs(
    bytes: &[u8],
    class: impl Fn(u8) -> bool,
    min_len: usize,
    mut f: impl FnMut(usize, usize) -> bool,
) {
    let min_len = min_len.max(1);
    let n = bytes.len();
    // Invariant: `i` is a run boundary (0, or `bytes[i - 1]` is outside the
    // class), and every run ending before `i` has been handled.
    let mut i = 0;
    while i + min_len <= n {
        let probe = i + min_len - 1;
        if !class(bytes[probe]) {
            i = probe + 1;
            continue;
        }
        let mut start = probe;
        while start > i && class(bytes[start - 1]) {
            start -= 1;
        }
        if start > i {
            // The run holding `probe` starts at `start`: too short so far.
            i = start;
            continue;
        }
        let mut end = probe + 1;
        while end < n && class(bytes[end]) {
            end += 1;
        }
        if !f(start, end) {
            return;
        }
        i = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs_reference(
        bytes: &[u8],
        class: impl Fn(u8) -> bool,
        min_len: usize,
    ) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = None;
        for i in 0..=bytes.len() {
            let inside = bytes.get(i).is_some_and(|b| class(*b));
            match (inside, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    if i - s >= min_len {
                        out.push((s, i));
                    }
                    start = None;
                }
                _ => {}
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn scans_agree_with_byte_by_byte_definitions(
            bytes in proptest::collection::vec(proptest::sample::select(vec![
                b'a', b'Z', b'0', b'9', b'5', b' ', b'%', b'\n', 0xE4, 0x80, b'=', b'/',
            ]), 0..80),
            min_len in 1usize..30,
        ) {
            let alnum = |b: u8| b.is_ascii_alphanumeric();
            let mut got = Vec::new();
            long_runs(&bytes, alnum, min_len, |s, e| { got.push((s, e)); true });
            proptest::prop_assert_eq!(got, runs_reference(&bytes, alnum, min_len));
            proptest::prop_assert_eq!(
                ascii_prefix_len(&bytes),
                bytes.iter().position(|b| !b.is_ascii()).unwrap_or(bytes.len())
            );
            for needle in [b'%', b'\n', 0xE4, b'a'] {
                proptest::prop_assert_eq!(
                    find_byte(needle, &bytes),
                    bytes.iter().position(|b| *b == needle)
                );
            }
            proptest::prop_assert_eq!(find_digit(&bytes), bytes.iter().position(u8::is_ascii_digit));
            proptest::prop_assert_eq!(
                find_digit_or(&bytes, b"%="),
                bytes.iter().position(|b| b.is_ascii_digit() || *b == b'%' || *b == b'=')
            );
        }
    }

    #[test]
    fn long_runs_stops_when_asked() {
        let mut seen = 0;
        long_runs(
            b"aaaa bbbb cccc",
            |b| b.is_ascii_alphabetic(),
            4,
            |_, _| {
                seen += 1;
                seen < 2
            },
        );
        assert_eq!(seen, 2);
    }
}
