//! The log's C2SP tlog-tiles view over HTTP: what a mirror needs besides the bytes
//! (scripts/tlog-tiles-drill checks the bytes with an independent client).

use crate::support::{manifest, Server};

/// Tiles and bundles never change, so a mirror may cache them for good; the
/// checkpoint moves, so it must be asked for again.
#[tokio::test]
async fn tiles_are_cached_for_good_and_the_checkpoint_is_not() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let auditor = server.create_key("auditor").await;
    for amount in [1000, 2000, 3000] {
        server
            .validate(&agent, &manifest("agent-tiles", "payment", amount))
            .await
            .expect(200);
    }
    let r = server
        .get("/v1/ledger/tlog/checkpoint", Some(&auditor.token))
        .await
        .expect(200);
    assert_eq!(r.headers["cache-control"], "no-cache", "{:?}", r.headers);
    for path in [
        "/v1/ledger/tlog/tile/0/000.p/1",
        "/v1/ledger/tlog/tile/entries/000.p/1",
    ] {
        let r = server.get(path, Some(&auditor.token)).await.expect(200);
        assert_eq!(
            r.headers["cache-control"], "private, max-age=31536000, immutable",
            "{path}: {:?}",
            r.headers
        );
        assert_eq!(r.content_type, "application/octet-stream", "{path}");
    }
    // What is not there is not cached as if it were.
    let r = server
        .get("/v1/ledger/tlog/tile/0/999", Some(&auditor.token))
        .await
        .expect_problem(404);
    assert!(r.headers.get("cache-control").is_none(), "{:?}", r.headers);
}

/// Entry bundles come gzip-compressed to a client that accepts it (tlog-tiles: they
/// SHOULD be compressed at the HTTP layer), plain to one that does not; hash tiles,
/// which do not compress, always plain.
#[tokio::test]
async fn entry_bundles_are_gzipped_for_clients_that_accept_it() {
    use std::io::Read;

    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let auditor = server.create_key("auditor").await;
    for amount in [1000, 2000, 3000, 4000] {
        server
            .validate(&agent, &manifest("agent-gzip", "payment", amount))
            .await
            .expect(200);
    }
    let size = server.tree_size().await;
    let bundle = format!("/v1/ledger/tlog/tile/entries/000.p/{size}");
    let fetch = |path: String, accept: Option<&'static str>| {
        let (url, token) = (server.url(&path), auditor.token.clone());
        async move {
            let mut req = crate::support::client().get(url).bearer_auth(token);
            if let Some(a) = accept {
                req = req.header("accept-encoding", a);
            }
            let r = req.send().await.expect("sent");
            assert_eq!(r.status(), 200, "{path}");
            let coding = r
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().expect("ascii").to_owned());
            let vary = r
                .headers()
                .get("vary")
                .map(|v| v.to_str().expect("ascii").to_owned());
            (coding, vary, r.bytes().await.expect("body").to_vec())
        }
    };
    let (coding, vary, plain) = fetch(bundle.clone(), None).await;
    assert_eq!(
        (coding.as_deref(), vary.as_deref()),
        (None, Some("accept-encoding"))
    );
    for refused in ["identity", "gzip;q=0", "br"] {
        let (coding, _, body) = fetch(bundle.clone(), Some(refused)).await;
        assert_eq!(coding, None, "{refused}");
        assert_eq!(body, plain, "{refused}");
    }
    let (coding, vary, packed) = fetch(bundle.clone(), Some("gzip, identity")).await;
    assert_eq!(
        (coding.as_deref(), vary.as_deref()),
        (Some("gzip"), Some("accept-encoding"))
    );
    assert!(
        packed.len() < plain.len(),
        "{} of {} bytes",
        packed.len(),
        plain.len()
    );
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(&packed[..])
        .read_to_end(&mut unpacked)
        .expect("gunzip");
    assert_eq!(unpacked, plain);
    // A hash tile is sent as it is.
    let (coding, vary, tile) =
        fetch(format!("/v1/ledger/tlog/tile/0/000.p/{size}"), Some("gzip")).await;
    assert_eq!((coding, vary), (None, None));
    assert_eq!(tile.len() as u64, 32 * size);
}
