//! Content coding of responses: gzip for the tlog-tiles entry bundles, when the client
//! accepts it (tlog-tiles: "Entry bundles SHOULD be compressed at the HTTP layer").
//! Owns reading Accept-Encoding and compressing bytes; which responses are compressed
//! is the routes' decision.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use http::HeaderMap;

/// Whether the request's Accept-Encoding lets the response be gzip (RFC 9110, 12.5.3):
/// `gzip` (or `x-gzip`) with a quality above 0, or else `*` with one. A coding named
/// outright overrides `*`; no header, or one that names neither, means identity.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    // For gzip and for `*`: whether any item named it, and whether one allowed it.
    let (mut gzip, mut star) = (None::<bool>, None::<bool>);
    let items = headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for item in items {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let quality = parts
            .map(str::trim)
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok());
        // An item whose quality does not parse says nothing.
        let Some(quality) = quality else { continue };
        let slot = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding == "*" {
            &mut star
        } else {
            continue;
        };
        *slot = Some(slot.unwrap_or(false) || quality > 0.0);
    }
    gzip.or(star).unwrap_or(false)
}

/// `bytes` gzip-compressed, at the fast level: bundles are JSON and shrink several
/// times even so, and the server's CPU goes to decisions.
pub fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::fast());
    encoder.write_all(bytes)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use http::HeaderValue;

    use super::*;

    fn accepts(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(
                http::header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("header"),
            );
        }
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_sent_only_to_a_client_that_accepts_it() {
        for yes in [
            &["gzip"][..],
            &["gzip, identity"],
            &["deflate, GZIP;q=0.5"],
            &["br", "x-gzip"],
            &["*"],
            &["identity;q=1, *;q=0.1"],
            &["gzip;q=0, gzip"],
        ] {
            assert!(accepts(yes), "{yes:?}");
        }
        for no in [
            &[][..],
            &["identity"],
            &["br, deflate"],
            &["gzip;q=0"],
            &["gzip;q=0.0, *"],
            &["*;q=0"],
            &["gzip;q=high"],
            &["gzipped"],
        ] {
            assert!(!accepts(no), "{no:?}");
        }
    }

    #[test]
    fn compressed_bytes_come_back_whole() {
        let bundle: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let packed = gzip(&bundle).expect("gzip");
        assert!(packed.len() < bundle.len(), "{} bytes", packed.len());
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .expect("gunzip");
        assert_eq!(unpacked, bundle);
    }
}
