//! Test databases: each test gets `sealgate_test_<unix secs>_<random>`, created through
//! the admin URL in `SEALGATE_TEST_DATABASE_URL`. Tests drop theirs at the end; the
//! conformance cases cannot (the shared macro owns their bodies), so the first test
//! of each run also drops test databases left over from runs more than an hour old.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use sealgate_store_postgres::{PostgresOptions, PostgresStore};
use tokio::sync::OnceCell;
use tokio_postgres::{Client, Config, NoTls};

pub(crate) const ENV: &str = "SEALGATE_TEST_DATABASE_URL";

/// The admin URL, or None after printing why the test is skipped.
pub(crate) fn admin_url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: {ENV} not set");
            None
        }
    }
}

pub(crate) async fn admin_client(admin_url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .expect("connect to the admin database");
    tokio::spawn(connection);
    client
}

/// A fresh, empty database; returns its name and URL.
pub(crate) struct TestDb {
    pub(crate) name: String,
    pub(crate) url: String,
    admin_url: String,
}

static SWEPT: OnceCell<()> = OnceCell::const_new();

impl TestDb {
    pub(crate) async fn create(admin_url: &str) -> TestDb {
        let admin = admin_client(admin_url).await;
        SWEPT.get_or_init(|| sweep_stale(&admin)).await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let name = format!(
            "sealgate_test_{now}_{:08x}",
            rand::thread_rng().gen::<u32>()
        );
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        TestDb {
            url: url_for(admin_url, None, &name),
            name,
            admin_url: admin_url.to_owned(),
        }
    }

    /// The URL of this database as another user (no password: trust auth in tests).
    pub(crate) fn url_as(&self, user: &str) -> String {
        url_for(&self.admin_url, Some(user), &self.name)
    }

    pub(crate) async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url, PostgresOptions::default())
            .await
            .expect("connect")
    }

    pub(crate) async fn client(&self) -> Client {
        admin_client(&self.url).await
    }

    pub(crate) async fn drop_db(self) {
        let admin = admin_client(&self.admin_url).await;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .expect("drop test database");
    }
}

/// Builds a URL for `db` on the admin URL's server, as `user` (default: the admin's).
fn url_for(admin_url: &str, user: Option<&str>, db: &str) -> String {
    let config: Config = admin_url.parse().expect("admin url parses");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = user
        .map(str::to_owned)
        .or_else(|| config.get_user().map(str::to_owned))
        .unwrap_or_else(|| "postgres".into());
    let password = match (user.as_str(), config.get_password()) {
        (u, Some(p)) if Some(u) == config.get_user() => format!(
            " password='{}'",
            String::from_utf8_lossy(p)
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
        ),
        _ => String::new(),
    };
    format!("host='{host}' port={port} user='{user}' dbname='{db}'{password}")
}

async fn sweep_stale(admin: &Client) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let rows = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'sealgate\\_test\\_%'",
            &[],
        )
        .await
        .expect("list test databases");
    for row in rows {
        let name: String = row.get(0);
        let created = name
            .split('_')
            .nth(2)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) > 3600 {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// Asserts `tree_nodes` holds exactly the level >= 1 nodes of the tree of `leaves`,
/// and that the store's nodes give that tree's root.
pub(crate) async fn assert_tree_is(
    raw: &Client,
    store: &dyn sealgate_store::Store,
    leaves: &[[u8; 32]],
) {
    use std::collections::BTreeMap;

    use sealgate_ledger::{root_plan, Frontier, NodeId};

    let mut reference = Frontier::new();
    let mut expected = BTreeMap::new();
    for leaf in leaves {
        for (id, hash) in reference.append(*leaf) {
            if id.level > 0 {
                expected.insert(id, hash);
            }
        }
    }
    let stored: BTreeMap<NodeId, [u8; 32]> = raw
        .query("SELECT level, idx, hash FROM tree_nodes", &[])
        .await
        .expect("read tree_nodes")
        .iter()
        .map(|r| {
            let level: i16 = r.get(0);
            let idx: i64 = r.get(1);
            let hash: Vec<u8> = r.get(2);
            (
                NodeId::new(
                    u8::try_from(level).expect("level"),
                    u64::try_from(idx).expect("idx"),
                ),
                hash.try_into().expect("32 bytes"),
            )
        })
        .collect();
    assert_eq!(stored.len(), expected.len(), "number of tree nodes");
    assert!(
        stored == expected,
        "tree_nodes differ from the reference tree"
    );

    let plan = root_plan(leaves.len() as u64);
    let ids = plan.nodes().to_vec();
    let got = store.nodes(&ids).await.expect("nodes");
    let found: std::collections::HashMap<_, _> = ids
        .into_iter()
        .zip(got)
        .filter_map(|(id, h)| h.map(|h| (id, h)))
        .collect();
    let root = plan
        .assemble(|id| found.get(&id).copied())
        .expect("root from stored nodes");
    assert_eq!(
        root.first().copied().unwrap_or(sealgate_ledger::EMPTY_ROOT),
        reference.root(),
        "root of {} leaves",
        leaves.len()
    );
}
