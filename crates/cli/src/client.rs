//! A minimal HTTP/1.1 client for the commands that talk to a running server
//! (`keys`, `bench`, `verify --server`): `http://` for a server on this machine or
//! network, `https://` for one behind a TLS proxy (the server itself speaks plain HTTP;
//! tokens must not cross other networks in clear). TLS is rustls, with the system's
//! trusted certificates (`SSL_CERT_FILE` / `SSL_CERT_DIR` name others). It asks a
//! server on another machine for gzip (the server compresses entry bundles about
//! tenfold) and unpacks it; on this machine compressing costs more CPU than the bytes
//! it saves, so a loopback server is asked for the plain bytes.

use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::ServerName, ClientConfig, RootCertStore};

/// The most a gzip response may unpack to: an entry bundle of 256 entries of the
/// largest size its 16-bit lengths allow. More is a bomb, not a bundle.
const MAX_UNPACKED: u64 = 256 * (2 + 65_535);
/// The most any answer's body may hold as sent: no answer a command expects is larger
/// than an entry bundle, so a server (or something posing as one) cannot make a
/// command hold more.
const MAX_BODY: usize = MAX_UNPACKED as usize;
/// How long connecting (with TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may wait for its whole answer by default: a server that stops
/// answering ends the command instead of hanging it. `SEALGATE_HTTP_TIMEOUT_SECS`
/// changes it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn request_timeout() -> anyhow::Result<Duration> {
    let Some(text) = std::env::var_os("SEALGATE_HTTP_TIMEOUT_SECS") else {
        return Ok(REQUEST_TIMEOUT);
    };
    text.to_str()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .filter(|&secs| secs > 0)
        .map(Duration::from_secs)
        .context("SEALGATE_HTTP_TIMEOUT_SECS: expected whole seconds, at least 1")
}

/// One keep-alive connection to a server.
pub(crate) struct Connection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    /// The Accept-Encoding sent: gzip, unless the server is on a loopback address.
    accept: &'static str,
}

/// Where a server is: `host:port`, and whether it is reached over TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    authority: String,
    tls: bool,
}

/// Reads `http://host:port[/]` or `https://host[:port][/]` (port 443 by default).
pub(crate) fn address(server: &str) -> anyhow::Result<Address> {
    const EXPECTED: &str = "expected http://host:port or https://host[:port]";
    // user:password@ would be repeated in every message below: refused unshown.
    if server.contains('@') {
        bail!(
            "--server: a URL with credentials (user@host) is not accepted; give the host \
             and port only, and the token in SEALGATE_TOKEN"
        );
    }
    let (tls, rest) = match (
        server.strip_prefix("https://"),
        server.strip_prefix("http://"),
    ) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => bail!("--server {server:?}: {EXPECTED}"),
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        bail!("--server {server:?}: {EXPECTED}");
    }
    // The port follows the last colon, unless that colon is inside an IPv6 literal.
    let port = authority
        .rsplit_once(':')
        .filter(|(_, port)| !port.ends_with(']'));
    let authority = match port {
        Some(("", _)) => bail!("--server {server:?}: {EXPECTED}"),
        Some((_, port)) if port.parse::<u16>().is_ok() => authority.to_owned(),
        Some(_) => bail!("--server {server:?}: {EXPECTED}, with a port from 1 to 65535"),
        None if tls => format!("{authority}:443"),
        None => bail!("--server {server:?}: expected http://host:port, with the port"),
    };
    // An IPv6 address only inside brackets, and only a whole one; a name or an IPv4
    // address without them.
    let host = authority.rsplit_once(':').map_or("", |(host, _)| host);
    let well_formed = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !host.is_empty() && !host.contains([':', '[', ']']),
    };
    if !well_formed {
        bail!("--server {server:?}: {EXPECTED} (an IPv6 address in brackets: http://[::1]:8080)");
    }
    Ok(Address { authority, tls })
}

/// The host of `host:port`, without an IPv6 literal's brackets.
fn host_of(authority: &str) -> &str {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The client TLS settings, made once: the system's trusted certificates, TLS 1.2 and 1.3.
fn tls_config() -> anyhow::Result<Arc<ClientConfig>> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        bail!("no trusted CA certificates found{why}: set SSL_CERT_FILE to a PEM bundle");
    }
    // ring, not aws-lc-rs: no C toolchain beyond cc to build, at the cost of the
    // post-quantum key exchange rustls 0.23.48 deprecated ring's provider over (X25519
    // and the NIST curves remain).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// HTTP/1.1 over `io`, its connection driven by a task of its own.
async fn handshake<T>(io: T) -> anyhow::Result<SendRequest<Full<Bytes>>>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

impl Connection {
    pub(crate) async fn open(address: &Address) -> anyhow::Result<Connection> {
        let authority = &address.authority;
        tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(address))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "connecting to {authority}: no connection within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )
            })?
    }

    async fn connect(address: &Address) -> anyhow::Result<Connection> {
        let authority = &address.authority;
        let stream = TcpStream::connect(authority)
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true)?;
        let sender = if address.tls {
            let name = ServerName::try_from(host_of(authority).to_owned())
                .with_context(|| format!("{authority}: not a host name for TLS"))?;
            let stream = tokio_rustls::TlsConnector::from(tls_config()?)
                .connect(name, stream)
                .await
                .with_context(|| format!("TLS with {authority}"))?;
            handshake(stream).await?
        } else {
            handshake(stream).await?
        };
        Ok(Connection {
            sender,
            authority: authority.clone(),
            accept: if is_loopback(authority) {
                "identity"
            } else {
                "gzip"
            },
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
        let authority = self.authority.clone();
        let limit = request_timeout()?;
        tokio::time::timeout(limit, self.exchange(method, path, token, body))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "{path}: no answer from {authority} within {} s \
                     (SEALGATE_HTTP_TIMEOUT_SECS sets the limit)",
                    limit.as_secs()
                )
            })?
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority)
            .header("accept-encoding", self.accept);
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
        let coding = resp
            .headers()
            .get(hyper::header::CONTENT_ENCODING)
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .trim()
                    .to_ascii_lowercase()
            });
        let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
                Ok(_) => anyhow::anyhow!("{path}: the answer is over {MAX_BODY} bytes"),
                Err(e) => anyhow::anyhow!("{path}: reading the answer: {e}"),
            })?
            .to_bytes();
        let body = match coding.as_deref() {
            None | Some("identity") => body,
            Some("gzip") => gunzip(&body).with_context(|| format!("{path}: the gzip body"))?,
            Some(other) => bail!("{path}: the server answered in Content-Encoding {other:?}, which was not asked for"),
        };
        Ok((status, body))
    }
}

/// Whether `authority` (host:port) names this machine: localhost or a loopback address.
fn is_loopback(authority: &str) -> bool {
    let host = host_of(authority);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A gzip body unpacked, refused past [`MAX_UNPACKED`] bytes.
fn gunzip(packed: &[u8]) -> anyhow::Result<Bytes> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(packed)
        .take(MAX_UNPACKED + 1)
        .read_to_end(&mut out)
        .context("not valid gzip")?;
    if out.len() as u64 > MAX_UNPACKED {
        bail!("unpacks to more than {MAX_UNPACKED} bytes");
    }
    Ok(out.into())
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
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!("{} is empty: it should hold a token", path.display());
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::{address, gunzip, host_of, is_loopback, Address, MAX_UNPACKED};

    #[test]
    fn only_a_server_on_another_machine_is_asked_for_gzip() {
        for here in [
            "127.0.0.1:8080",
            "127.8.0.3:1",
            "localhost:80",
            "[::1]:8080",
        ] {
            assert!(is_loopback(here), "{here}");
        }
        for there in [
            "10.0.0.5:8080",
            "audit.example.com:443",
            "[2001:db8::1]:8080",
        ] {
            assert!(!is_loopback(there), "{there}");
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(bytes).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn a_gzip_body_unpacks_up_to_a_bundle_and_no_further() {
        let biggest = vec![7u8; MAX_UNPACKED as usize];
        assert_eq!(
            gunzip(&gzip(&biggest)).expect("a bundle's worth").len(),
            biggest.len()
        );
        // A few kilobytes that would unpack past it are refused, not unpacked.
        let bomb = gzip(&vec![0u8; MAX_UNPACKED as usize + 1]);
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let err = gunzip(&bomb).expect_err("a bomb").to_string();
        assert!(err.contains("unpacks to more than"), "{err}");
        let err = gunzip(b"not gzip at all").expect_err("garbage").to_string();
        assert_eq!(err, "not valid gzip");
    }

    #[test]
    fn a_server_needs_http_a_host_and_a_port_or_https() {
        for (good, authority, tls) in [
            ("http://127.0.0.1:8080", "127.0.0.1:8080", false),
            ("http://localhost:1/", "localhost:1", false),
            ("http://[::1]:8080", "[::1]:8080", false),
            ("https://audit.example.com", "audit.example.com:443", true),
            (
                "https://audit.example.com:8443/",
                "audit.example.com:8443",
                true,
            ),
            ("https://[::1]", "[::1]:443", true),
            ("https://[::1]:8443", "[::1]:8443", true),
        ] {
            let got = address(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(
                got,
                Address {
                    authority: authority.into(),
                    tls
                },
                "{good}"
            );
        }
        for bad in [
            "127.0.0.1:8080",
            "ftp://127.0.0.1:8080",
            "http://127.0.0.1",
            "http://[::1]",
            "http://:8080",
            "https://:8080",
            "https://",
            "http://host:99999",
            "https://host:port",
            "http://host:8080/path",
            "https://user@host",
            "http://",
        ] {
            assert!(address(bad).is_err(), "{bad}");
        }
        let err = address("http://auditor:hunter2@127.0.0.1:8080")
            .expect_err("credentials")
            .to_string();
        assert!(
            err.contains("credentials") && !err.contains("hunter2"),
            "{err}"
        );
        for broken in ["http://[::1", "http://[::1:8080", "http://::1:8080"] {
            assert!(address(broken).is_err(), "{broken}");
        }
        let err = address("http://127.0.0.1")
            .expect_err("no port")
            .to_string();
        assert!(err.contains("with the port"), "{err}");
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("audit.example.com:443"), "audit.example.com");
    }
}
