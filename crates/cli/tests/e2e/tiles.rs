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
