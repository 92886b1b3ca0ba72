//! sealgate's HTTP front door. Only this crate knows HTTP: it turns requests into
//! calls on `service`, and service results and `ApiError`s into responses.
//!
//! `serve` takes the listener and a shutdown future, so tests run the real server
//! on port 0 and stop it when they are done (mini-redis's `server::run`).

pub mod auth;
pub mod breaker;
pub mod encoding;
pub mod error;
pub mod extract;
pub mod keystore;
pub mod metrics;
pub mod middleware;
pub mod ratelimit;
pub mod routes;
pub mod scrub;
pub mod service;
pub mod settings;
pub mod state;

use std::future::Future;

pub use error::ApiError;
pub use routes::router;
pub use settings::{Overrides, Settings};
pub use state::{AppState, SystemClock};

/// Serves `state` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let last = state.clone();
    let shutdown = async move {
        shutdown.await;
        // Agents long-polling their decisions get their answer now, not after the wait.
        state
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        state.resolved.notify_waiters();
    };
    // The peer's address is the per-IP rate limit's key.
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    service::ledger::sign_on_shutdown(&last).await;
    served
}
