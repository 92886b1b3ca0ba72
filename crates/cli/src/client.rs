//! A minimal HTTP/1.1 client for the commands that talk to a running server
//! (`keys`, `bench`). Plain HTTP on purpose: put TLS in front with a proxy.

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One keep-alive connection to `authority` (host:port).
pub(crate) struct Connection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

/// Splits `http://host:port[/]` into `host:port`.
pub(crate) fn authority(server: &str) -> anyhow::Result<String> {
    let rest = server
        .strip_prefix("http://")
        .with_context(|| format!("--server {server:?}: expected http://host:port"))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        bail!("--server {server:?}: expected http://host:port");
    }
    if !authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    {
        bail!("--server {server:?}: expected http://host:port, with the port");
    }
    Ok(authority.to_owned())
}

impl Connection {
    pub(crate) async fn open(authority: &str) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(authority)
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection {
            sender,
            authority: authority.to_owned(),
        })
    }

    /// Sends one request and returns status and body.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// The token for admin calls: `SEALGATE_TOKEN`, else the data directory's admin-token file.
pub(crate) fn admin_token(token_file: Option<&std::path::Path>) -> anyhow::Result<String> {
    if let Ok(t) = std::env::var("SEALGATE_TOKEN") {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_owned());
        }
    }
    let path = token_file
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "./sealgate-data/admin-token".into());
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no SEALGATE_TOKEN set and cannot read {}", path.display()))?;
    // A token others can read may already have leaked: say so, as psql does for a
    // loose .pgpass. Not refused: secret volumes (Kubernetes, Docker) are often 0644
    // or 0444 and read-only, and the file is the operator's, not sealgate's.
    if let Err(e) = sealgate_server::keystore::check_private(&path) {
        eprintln!(
            "warning: {e:#}; or pass the token in SEALGATE_TOKEN. Anyone who can read it can act as admin."
        );
    }
    Ok(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn a_server_needs_http_a_host_and_a_port() {
        for good in [
            "http://127.0.0.1:8080",
            "http://localhost:1/",
            "http://[::1]:8080",
        ] {
            assert!(authority(good).is_ok(), "{good}");
        }
        for bad in [
            "127.0.0.1:8080",
            "https://127.0.0.1:8080",
            "http://127.0.0.1",
            "http://[::1]",
            "http://:8080",
            "http://host:99999",
            "http://host:8080/path",
            "http://",
        ] {
            assert!(authority(bad).is_err(), "{bad}");
        }
        let err = authority("http://127.0.0.1")
            .expect_err("no port")
            .to_string();
        assert!(err.contains("with the port"), "{err}");
    }
}
