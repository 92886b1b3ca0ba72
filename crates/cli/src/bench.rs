//! `sealgate bench`: N keep-alive connections submit a realistic mix of manifests for
//! T seconds and the command prints decisions/s and latency percentiles as JSON.
//!
//! Closed loop by default (each connection sends as fast as answers come back: the
//! throughput figure). With `--rate`, open loop at a fixed total rate, latency
//! measured from each request's scheduled send time so a stalled server cannot hide
//! its queueing delay (no coordinated omission): the latency-at-load figure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::client::{admin_token, authority, Connection};

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
    if args.connections == 0 || args.duration <= 0.0 {
        bail!("--connections and --duration must be positive");
    }
    if let Some(rate) = args.rate {
        if rate <= 0.0 {
            bail!("--rate must be positive");
        }
    }
    let authorities = args
        .servers
        .iter()
        .map(|s| authority(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let Some(authority) = authorities.first().cloned() else {
        bail!("--server: at least one is needed");
    };
    let token = match args.agent_token {
        Some(t) => t,
        None => {
            let admin = admin_token(args.token_file.as_deref())?;
            let mut conn = Connection::open(&authority).await?;
            let body = serde_json::to_vec(&json!({"role": "agent", "name": "sealgate bench"}))?;
            let (status, body) = conn
                .send(Method::POST, "/v1/keys", Some(&admin), Some(body.into()))
                .await?;
            if status != 201 {
                bail!(
                    "creating a bench agent key: server answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            let created: serde_json::Value = serde_json::from_slice(&body)?;
            created["token"]
                .as_str()
                .context("key response without token")?
                .to_owned()
        }
    };

    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r));

    let conns = args.connections as f64;
    let mut workers = Vec::with_capacity(args.connections);
    for w in 0..args.connections {
        let (authority, token) = (authorities[w % authorities.len()].clone(), token.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = Connection::open(&authority).await?;
            let mut rng = SmallRng::seed_from_u64(w as u64);
            let mut tally = Tally::default();
            // Stagger open-loop workers evenly over one interval.
            let mut next = start + interval.map_or(Duration::ZERO, |i| i.mul_f64(w as f64 / conns));
            let mut n = w as u64 * 1_000_000_000;
            loop {
                if interval.is_some() {
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
    let mut total = Tally::default();
    for w in workers {
        let t = w.await.context("bench worker panicked")??;
        total.latencies_us.extend(t.latencies_us);
        total.approved += t.approved;
        total.denied += t.denied;
        total.pending += t.pending;
        total.errors += t.errors;
    }
    total.latencies_us.sort_unstable();
    let decisions = total.latencies_us.len() as f64;
    let pct = |p: f64| -> f64 {
        if total.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (total.latencies_us.len() - 1) as f64).round() as usize;
        total.latencies_us[i] as f64 / 1000.0
    };
    let report = json!({
        "servers": authorities.len(),
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
        "latency_ms": {"p50": pct(50.0), "p95": pct(95.0), "p99": pct(99.0), "max": pct(100.0)},
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if total.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
