//! `sealgate bench`: N keep-alive connections submit a realistic mix of manifests for
//! T seconds and the command prints decisions/s and latency percentiles as JSON.
//!
//! Closed loop by default (each connection sends as fast as answers come back: the
//! throughput figure). With `--rate`, open loop at a fixed total rate, latency
//! measured from each request's scheduled send time so a stalled server cannot hide
//! its queueing delay (no coordinated omission): the latency-at-load figure.
//!
//! With `--proof-connections N`, N more connections act as auditors during the same
//! load, each asking in a closed loop for the inclusion proof of a random entry already
//! answered (fresh ones included): the proof-latency-under-load figure, reported apart.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::client::{address, admin_token, Address, Connection};

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Server(s) to load; repeat the flag (or separate with commas) to spread the
    /// connections round-robin over replicas sharing one database.
    #[arg(
        long = "server",
        env = "SEALGATE_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_delimiter = ','
    )]
    servers: Vec<String>,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of unmeasured warm-up before it.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Total requests per second (open loop); omit for closed loop at full speed.
    #[arg(long)]
    rate: Option<f64>,
    /// An agent token; without it, one is created with the admin token.
    #[arg(long, env = "SEALGATE_AGENT_TOKEN", hide_env_values = true)]
    agent_token: Option<String>,
    /// Admin token file used to create the agent key [default: ./sealgate-data/admin-token].
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Extra connections that read inclusion proofs of answered decisions during the
    /// load (closed loop), reported separately; needs the admin token for an auditor key.
    #[arg(long, default_value_t = 0)]
    proof_connections: usize,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    approved: u64,
    denied: u64,
    pending: u64,
    errors: u64,
}

/// A manifest from the mix: mostly payments and refunds under the limits, some over
/// them (denied), a few methods the shipped policy does not allow (denied).
fn manifest(rng: &mut SmallRng, n: u64) -> Bytes {
    let roll = rng.gen_range(0..100);
    let (method, amount) = match roll {
        0..=64 => ("payment", rng.gen_range(100..=5000)),
        65..=79 => ("payment", rng.gen_range(5001..=200_000)),
        80..=94 => ("refund", rng.gen_range(100..=10_000)),
        _ => ("transfer", rng.gen_range(100..=5000)),
    };
    let body = json!({"manifest": {
        "agent_id": format!("bench-agent-{}", n % 16),
        "org_id": "bench-org",
        "user_id": format!("user-{}", rng.gen_range(0..1000)),
        "provider": "stripe",
        "method": method,
        "parameters": {"amount": amount, "currency": "usd", "invoice": format!("INV-{n:08}"),
                       "customer": format!("cus_{:012x}", rng.gen::<u64>() & 0xffff_ffff_ffff)},
        "reasoning": "Customer invoice is due this week and matches the purchase order on file; paying it now avoids a late fee.",
        "confidence_score": 0.9,
        "environment": "production"
    }});
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.connections == 0 {
        bail!("--connections must be positive");
    }
    // Seconds: finite, and short enough to add to a clock (a day is far beyond any run).
    let seconds = |flag: &str, s: f64, zero_ok: bool| match s {
        s if s.is_finite() && (s > 0.0 || (zero_ok && s == 0.0)) && s <= 86_400.0 => Ok(()),
        _ => Err(anyhow::anyhow!(
            "{flag} must be a number of seconds {} 86400",
            if zero_ok {
                "from 0 to"
            } else {
                "above 0, up to"
            }
        )),
    };
    seconds("--duration", args.duration, false)?;
    seconds("--warmup", args.warmup, true)?;
    if let Some(rate) = args.rate {
        // At least one request per connection per day, so the interval is a duration.
        if !(rate.is_finite() && rate > 0.0 && args.connections as f64 / rate <= 86_400.0) {
            bail!("--rate must be a positive number of requests per second, at least --connections per day");
        }
    }
    let addresses = args
        .servers
        .iter()
        .map(|s| address(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let Some(first) = addresses.first().cloned() else {
        bail!("--server: at least one is needed");
    };
    let token = match args.agent_token {
        Some(t) => t,
        None => create_key(&first, args.token_file.as_deref(), "agent").await?,
    };
    let auditor_token = match args.proof_connections {
        0 => None,
        _ => Some(create_key(&first, args.token_file.as_deref(), "auditor").await?),
    };

    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r));

    // One past the highest ledger index any decision answer named: proofs are asked
    // only for entries a client has already been told about.
    let answered = Arc::new(AtomicU64::new(0));
    let conns = args.connections as f64;
    let mut workers = Vec::with_capacity(args.connections);
    for w in 0..args.connections {
        let (address, token) = (addresses[w % addresses.len()].clone(), token.clone());
        let answered = answered.clone();
        workers.push(tokio::spawn(async move {
            let mut conn = Connection::open(&address).await?;
            let mut rng = SmallRng::seed_from_u64(w as u64);
            let mut tally = Tally::default();
            // Stagger open-loop workers evenly over one interval.
            let mut next = start + interval.map_or(Duration::ZERO, |i| i.mul_f64(w as f64 / conns));
            let mut n = w as u64 * 1_000_000_000;
            loop {
                if interval.is_some() {
                    if next >= end {
                        break;
                    }
                    tokio::time::sleep_until(next.into()).await;
                }
                let scheduled = if interval.is_some() {
                    next
                } else {
                    Instant::now()
                };
                if scheduled >= end {
                    break;
                }
                n += 1;
                let body = manifest(&mut rng, n);
                let result = conn
                    .send(
                        Method::POST,
                        "/v1/manifest/validate",
                        Some(&token),
                        Some(body),
                    )
                    .await;
                let done = Instant::now();
                if scheduled >= measure_from {
                    match result {
                        Ok((200, body)) => {
                            let text = &body[..];
                            if let Some(index) = ledger_index(text) {
                                answered.fetch_max(index + 1, Ordering::Relaxed);
                            }
                            if contains(text, b"\"status\":\"approved\"") {
                                tally.approved += 1;
                            } else if contains(text, b"\"status\":\"pending_approval\"") {
                                tally.pending += 1;
                            } else {
                                tally.denied += 1;
                            }
                            tally.latencies_us.push(
                                done.duration_since(scheduled)
                                    .as_micros()
                                    .min(u32::MAX as u128) as u32,
                            );
                        }
                        Ok(_) | Err(_) => tally.errors += 1,
                    }
                }
                if let Some(i) = interval {
                    next += i;
                }
            }
            anyhow::Ok(tally)
        }));
    }
    let mut readers = Vec::with_capacity(args.proof_connections);
    for r in 0..args.proof_connections {
        let address = addresses[r % addresses.len()].clone();
        let (token, answered) = (auditor_token.clone().unwrap_or_default(), answered.clone());
        readers.push(tokio::spawn(async move {
            let mut conn = Connection::open(&address).await?;
            let mut rng = SmallRng::seed_from_u64(1_000_000 + r as u64);
            let mut tally = Tally::default();
            tokio::time::sleep_until(start.into()).await;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let known = answered.load(Ordering::Relaxed);
                if known == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let path = format!(
                    "/v1/ledger/proof/inclusion?index={}",
                    rng.gen_range(0..known)
                );
                let result = conn.send(Method::GET, &path, Some(&token), None).await;
                let done = Instant::now();
                if sent >= measure_from {
                    match result {
                        Ok((200, _)) => {
                            tally
                                .latencies_us
                                .push(done.duration_since(sent).as_micros().min(u32::MAX as u128)
                                    as u32)
                        }
                        Ok(_) | Err(_) => tally.errors += 1,
                    }
                }
            }
            anyhow::Ok(tally)
        }));
    }
    let mut total = Tally::default();
    for w in workers {
        let t = w.await.context("bench worker panicked")??;
        total.latencies_us.extend(t.latencies_us);
        total.approved += t.approved;
        total.denied += t.denied;
        total.pending += t.pending;
        total.errors += t.errors;
    }
    let mut proofs = Tally::default();
    for r in readers {
        let t = r.await.context("bench proof reader panicked")??;
        proofs.latencies_us.extend(t.latencies_us);
        proofs.errors += t.errors;
    }
    let decisions = total.latencies_us.len() as f64;
    let mut report = json!({
        "servers": addresses.len(),
        "connections": args.connections,
        "duration_s": args.duration,
        "mode": if args.rate.is_some() { "open_loop" } else { "closed_loop" },
        "target_rate": args.rate,
        "decisions": decisions as u64,
        "decisions_per_s": (decisions / args.duration).round(),
        "approved": total.approved,
        "denied": total.denied,
        "pending_approval": total.pending,
        "errors": total.errors,
        "latency_ms": percentiles(&mut total.latencies_us),
    });
    if args.proof_connections > 0 {
        report["inclusion_proofs"] = json!({
            "connections": args.proof_connections,
            "proofs": proofs.latencies_us.len(),
            "proofs_per_s": (proofs.latencies_us.len() as f64 / args.duration).round(),
            "errors": proofs.errors,
            "latency_ms": percentiles(&mut proofs.latencies_us),
        });
    }
    crate::out(serde_json::to_string_pretty(&report)?)?;
    Ok(if total.errors + proofs.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Creates a key of `role` with the admin token and returns its bearer token.
async fn create_key(
    address: &Address,
    token_file: Option<&std::path::Path>,
    role: &str,
) -> anyhow::Result<String> {
    let admin = admin_token(token_file)?;
    let mut conn = Connection::open(address).await?;
    let body =
        serde_json::to_vec(&json!({"role": role, "name": format!("sealgate bench {role}")}))?;
    let (status, body) = conn
        .send(Method::POST, "/v1/keys", Some(&admin), Some(body.into()))
        .await?;
    if status != 201 {
        bail!(
            "creating a bench {role} key: server answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let created: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(created["token"]
        .as_str()
        .context("key response without token")?
        .to_owned())
}

/// p50/p95/p99/max in milliseconds (nearest rank); sorts `latencies_us`.
fn percentiles(latencies_us: &mut [u32]) -> serde_json::Value {
    latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (latencies_us.len() - 1) as f64).round() as usize;
        latencies_us[i] as f64 / 1000.0
    };
    json!({"p50": pct(50.0), "p95": pct(95.0), "p99": pct(99.0), "max": pct(100.0)})
}

/// The `ledger_index` a decision answer names, read without parsing the whole body.
fn ledger_index(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"ledger_index\":";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ledger_index_of_an_answer() {
        let body = br#"{"approved":true,"ledger_index":4711,"leaf_hash":"x"}"#;
        assert_eq!(ledger_index(body), Some(4711));
        assert_eq!(ledger_index(br#"{"ledger_index":"7"}"#), None);
        assert_eq!(ledger_index(br#"{"status":"denied"}"#), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut us: Vec<u32> = (1..=100).rev().map(|ms| ms * 1000).collect();
        let p = percentiles(&mut us);
        assert_eq!(p["p50"], json!(51.0));
        assert_eq!(p["p99"], json!(99.0));
        assert_eq!(p["max"], json!(100.0));
        assert_eq!(percentiles(&mut [])["p99"], json!(0.0));
    }
}
