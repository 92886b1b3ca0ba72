//! The behaviour every backend must show, written once against the `Store` trait
//! (atuin's `db_story`). A backend's tests instantiate it with
//! `sealgate_store::conformance_tests!(make_store)`, where `make_store().await` gives a
//! fresh, empty store (its own file, database or schema).

use sealgate_core::entry::{
    ApprovalEntry, DecisionEntry, Entry, Latency, PolicyActivation, RedemptionEntry, SealGrant,
    Status,
};
use sealgate_core::{Manifest, Role};
use serde_json::json;

use std::future::Future as _;
use std::sync::Arc;

use crate::{Appender, AuditQuery, NewApiKey, NewEntry, NewPolicy, Rejection, Revocation, Store};

/// Generates one `#[tokio::test]` per conformance case.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@cases $make;
            appends_get_contiguous_indices,
            entries_read_back_byte_for_byte,
            failed_claims_take_no_index,
            redemption_is_single_use,
            redemption_twice_in_one_batch_is_refused,
            a_pending_decision_is_resolved_once,
            a_resolution_seal_is_redeemable_once,
            audit_query_filters_and_pages_newest_first,
            policies_are_stored_once_and_activation_is_latest,
            keys_are_found_by_hash_until_revoked,
            the_last_live_admin_key_is_never_revoked,
            concurrent_appends_through_the_appender_stay_contiguous,
            tree_nodes_give_roots_and_proofs_for_every_size,
            spot_checks_hold_for_the_signed_trees_and_name_what_does_not,
            checkpoints_are_kept_in_order);
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: std::sync::Arc<dyn $crate::Store> = std::sync::Arc::new($make().await);
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

/// A decision entry for tests; `seal` grants a seal with that id.
pub fn decision(
    agent: &str,
    method: &str,
    status: Status,
    seal: Option<&str>,
    time: &str,
) -> NewEntry {
    let manifest = Manifest::from_value(
        &json!({"agent_id": agent, "org_id": "acme", "provider": "stripe", "method": method,
                "parameters": {"amount": 1000}, "reasoning": "test"}),
        "/manifest",
    )
    .expect("test manifest is valid");
    let entry = Entry::Decision(Box::new(DecisionEntry {
        server_time: time.to_owned(),
        decision_id: format!("dec-{agent}-{time}-{}", seal.unwrap_or("none")),
        manifest_id: format!("man-{agent}-{time}"),
        manifest_hash: "00".repeat(32),
        manifest,
        screening: json!({}),
        policy_version: Some("ab".repeat(32)),
        status,
        reasons: vec![],
        seal: seal.map(|s| SealGrant {
            seal_id: s.to_owned(),
            expires_at: "2030-01-01T00:00:00.000000Z".into(),
        }),
        latency_us: Latency::default(),
        submitted_by: "key-agent".into(),
        redacted: vec![],
    }));
    NewEntry::new(entry).expect("canonical")
}

pub fn redemption(seal_id: &str, decision_index: u64) -> NewEntry {
    NewEntry::new(Entry::SealRedeemed(RedemptionEntry {
        server_time: "2026-11-23T12:00:00.000000Z".into(),
        seal_id: seal_id.to_owned(),
        decision_index,
        redeemed_by: "key-executor".into(),
    }))
    .expect("canonical")
}

/// A person's answer to the pending decision at `decision_index`; approving grants
/// `seal` when given.
pub fn resolution(
    decision_index: u64,
    decision_id: &str,
    approved: bool,
    seal: Option<&str>,
) -> NewEntry {
    NewEntry::new(Entry::ApprovalResolved(ApprovalEntry {
        server_time: "2026-11-23T12:30:00.000000Z".into(),
        decision_index,
        decision_id: decision_id.to_owned(),
        approved,
        approver: "key-approver".into(),
        reason: "checked with the customer".into(),
        seal: seal.map(|s| SealGrant {
            seal_id: s.to_owned(),
            expires_at: "2030-01-01T00:00:00.000000Z".into(),
        }),
    }))
    .expect("canonical")
}

/// Gives every evidence table at least one row, in five single-entry batches: an
/// approved decision with seal `s1`, its redemption, a policy activation of `v1`, a
/// pending decision at index 3 and a refusal of it, and the bundle `v1`.
pub async fn fill_evidence(store: &dyn Store) {
    store
        .append(vec![decision(
            "a",
            "payment",
            Status::Approved,
            Some("s1"),
            "2026-11-23T10:00:00.000000Z",
        )])
        .await
        .expect("append");
    store
        .append(vec![redemption("s1", 0)])
        .await
        .expect("redeem");
    let activation = Entry::PolicyActivated(PolicyActivation {
        server_time: "2026-11-23T10:00:01.000000Z".into(),
        version: "v1".into(),
        previous_version: None,
        activated_by: "admin".into(),
    });
    store
        .append(vec![NewEntry::new(activation).expect("canonical")])
        .await
        .expect("activate");
    // A decision pending approval and a person's answer to it.
    store
        .append(vec![decision(
            "a",
            "refund",
            Status::PendingApproval,
            None,
            "2026-11-23T10:00:03.000000Z",
        )])
        .await
        .expect("pending");
    store
        .append(vec![resolution(3, "dec-pending", false, None)])
        .await
        .expect("resolve");
    store
        .put_policy(&NewPolicy {
            version: "v1".into(),
            bundle: b"{}".to_vec(),
            uploaded_at: "2026-11-23T10:00:00.000000Z".into(),
            uploaded_by: "admin".into(),
        })
        .await
        .expect("policy");
}

fn t(i: u32) -> String {
    format!("2026-11-23T10:{:02}:{:02}.000000Z", i / 60, i % 60)
}

pub async fn appends_get_contiguous_indices(store: Arc<dyn Store>) {
    assert_eq!(store.tree_size().await.expect("size"), 0);
    let first = store
        .append(
            (0..3)
                .map(|i| decision("a", "payment", Status::Denied, None, &t(i)))
                .collect(),
        )
        .await
        .expect("append");
    let second = store
        .append(vec![decision("a", "payment", Status::Denied, None, &t(9))])
        .await
        .expect("append");
    let indices: Vec<u64> = first
        .iter()
        .chain(&second)
        .map(|o| o.as_ref().expect("accepted").index)
        .collect();
    assert_eq!(indices, vec![0, 1, 2, 3]);
    assert_eq!(store.tree_size().await.expect("size"), 4);
}

pub async fn entries_read_back_byte_for_byte(store: Arc<dyn Store>) {
    let batch: Vec<NewEntry> = (0..5)
        .map(|i| decision("b", "refund", Status::Approved, None, &t(i)))
        .collect();
    let expected: Vec<(Vec<u8>, [u8; 32])> = batch
        .iter()
        .map(|e| (e.canonical.clone(), e.leaf_hash))
        .collect();
    store.append(batch).await.expect("append");
    for (i, (bytes, hash)) in expected.iter().enumerate() {
        let e = store.entry(i as u64).await.expect("read").expect("present");
        assert_eq!((&e.canonical, &e.leaf_hash), (bytes, hash));
        assert_eq!(crate::leaf_hash(&e.canonical), e.leaf_hash);
    }
    assert!(store.entry(5).await.expect("read").is_none());
    let range = store.range(1, 4).await.expect("range");
    assert_eq!(
        range.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(range[0].canonical, expected[1].0);
}

pub async fn failed_claims_take_no_index(store: Arc<dyn Store>) {
    let out = store
        .append(vec![
            decision("c", "payment", Status::Denied, None, &t(0)),
            redemption("never-issued", 0),
            decision("c", "payment", Status::Denied, None, &t(1)),
        ])
        .await
        .expect("append");
    assert_eq!(out[0].as_ref().expect("ok").index, 0);
    assert_eq!(out[1], Err(Rejection::UnknownSeal("never-issued".into())));
    assert_eq!(out[2].as_ref().expect("ok").index, 1);
    assert_eq!(store.tree_size().await.expect("size"), 2);
}

pub async fn redemption_is_single_use(store: Arc<dyn Store>) {
    store
        .append(vec![decision(
            "d",
            "payment",
            Status::Approved,
            Some("seal-1"),
            &t(0),
        )])
        .await
        .expect("append");
    let seal = store.seal("seal-1").await.expect("read").expect("issued");
    assert_eq!((seal.decision_index, seal.redemption.clone()), (0, None));
    let first = store
        .append(vec![redemption("seal-1", 0)])
        .await
        .expect("append");
    assert_eq!(first[0].as_ref().expect("first redemption").index, 1);
    let second = store
        .append(vec![redemption("seal-1", 0)])
        .await
        .expect("append");
    assert_eq!(second[0], Err(Rejection::AlreadyRedeemed("seal-1".into())));
    let seal = store.seal("seal-1").await.expect("read").expect("issued");
    assert_eq!(seal.redemption.expect("redeemed").index, 1);
    assert!(store.seal("seal-2").await.expect("read").is_none());
}

pub async fn redemption_twice_in_one_batch_is_refused(store: Arc<dyn Store>) {
    store
        .append(vec![decision(
            "e",
            "payment",
            Status::Approved,
            Some("seal-x"),
            &t(0),
        )])
        .await
        .expect("append");
    let out = store
        .append(vec![redemption("seal-x", 0), redemption("seal-x", 0)])
        .await
        .expect("append");
    assert!(out[0].is_ok());
    assert_eq!(out[1], Err(Rejection::AlreadyRedeemed("seal-x".into())));
    assert_eq!(store.tree_size().await.expect("size"), 2);
}

fn decision_id(new: &NewEntry) -> String {
    match &new.entry {
        Entry::Decision(d) => d.decision_id.clone(),
        other => panic!("not a decision: {}", other.kind()),
    }
}

pub async fn a_pending_decision_is_resolved_once(store: Arc<dyn Store>) {
    let pending: Vec<NewEntry> = (0..3)
        .map(|i| decision("p", "payment", Status::PendingApproval, None, &t(i)))
        .collect();
    let ids: Vec<String> = pending.iter().map(decision_id).collect();
    let mut batch = pending;
    batch.push(decision("p", "payment", Status::Denied, None, &t(3)));
    store.append(batch).await.expect("append");
    let queue = |before| {
        let store = store.clone();
        async move {
            let page = store
                .pending_approvals(before, None, 10)
                .await
                .expect("queue");
            page.iter().map(|e| e.index).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        queue(None).await,
        vec![2, 1, 0],
        "newest first, denials left out"
    );
    assert_eq!(queue(Some(2)).await, vec![1, 0], "below the cursor");
    let recent = store
        .pending_approvals(None, Some(&t(0)), 10)
        .await
        .expect("queue");
    assert_eq!(
        recent.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![2, 1],
        "only those recorded after the given time"
    );

    // One batch resolves decision 1 twice and decision 0 once: the repeat is refused.
    let out = store
        .append(vec![
            resolution(1, &ids[1], false, None),
            resolution(1, &ids[1], true, Some("seal-twice")),
            resolution(0, &ids[0], true, Some("seal-p0")),
        ])
        .await
        .expect("append");
    assert_eq!(out[0].as_ref().expect("first answer").index, 4);
    assert_eq!(out[1], Err(Rejection::AlreadyResolved(1)));
    assert_eq!(out[2].as_ref().expect("other decision").index, 5);
    // And so is a later one, in a batch of its own.
    let later = store
        .append(vec![resolution(0, &ids[0], false, None)])
        .await
        .expect("append");
    assert_eq!(later[0], Err(Rejection::AlreadyResolved(0)));
    assert_eq!(store.tree_size().await.expect("size"), 6);
    assert!(
        store.seal("seal-twice").await.expect("read").is_none(),
        "a refused resolution grants nothing"
    );
    assert_eq!(queue(None).await, vec![2]);
    let row = store.decision(&ids[1]).await.expect("read").expect("found");
    assert_eq!(row.entry.index, 1);
    let r = row.resolution.expect("resolved");
    assert_eq!(
        (r.index, r.approved, r.approver.as_str()),
        (4, false, "key-approver")
    );
    assert_eq!(r.resolved_at, "2026-11-23T12:30:00.000000Z");
    assert_eq!(r.seal, None, "a refusal grants no seal");
    assert_eq!(r.reason, "checked with the customer", "read off the entry");
    assert_eq!(
        store.resolution(1).await.expect("read"),
        Some(r.clone()),
        "the resolution alone reads the same"
    );
    assert_eq!(store.resolution(2).await.expect("read"), None, "still open");
    assert_eq!(store.resolution(u64::MAX).await.expect("read"), None);
    let open = store.decision(&ids[2]).await.expect("read").expect("found");
    assert!(open.resolution.is_none());
    assert!(store.decision("dec-nobody").await.expect("read").is_none());
    let audit = store
        .decisions(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("audit");
    let resolved: Vec<(u64, Option<u64>)> = audit
        .iter()
        .map(|r| (r.entry.index, r.resolution.as_ref().map(|v| v.index)))
        .collect();
    assert_eq!(
        resolved,
        vec![(3, None), (2, None), (1, Some(4)), (0, Some(5))]
    );
    // A malformed refusal that carries a seal is recorded (verify names it) but its
    // seal is not redeemable.
    store
        .append(vec![resolution(
            2,
            &ids[2],
            false,
            Some("seal-of-a-refusal"),
        )])
        .await
        .expect("append")[0]
        .as_ref()
        .expect("recorded");
    assert!(store
        .seal("seal-of-a-refusal")
        .await
        .expect("read")
        .is_none());
    assert_eq!(queue(None).await, Vec::<u64>::new());
    let r = store.decision(&ids[2]).await.expect("read").expect("found");
    assert_eq!(r.resolution.expect("resolved").seal, None);
}

pub async fn a_resolution_seal_is_redeemable_once(store: Arc<dyn Store>) {
    let pending = decision("q", "refund", Status::PendingApproval, None, &t(0));
    let id = decision_id(&pending);
    store.append(vec![pending]).await.expect("append");
    store
        .append(vec![resolution(0, &id, true, Some("seal-q"))])
        .await
        .expect("append");
    let seal = store.seal("seal-q").await.expect("read").expect("granted");
    assert_eq!(
        (seal.decision_index, seal.redemption),
        (0, None),
        "the seal names the decision it executes, not the resolution"
    );
    let first = store
        .append(vec![redemption("seal-q", 0)])
        .await
        .expect("append");
    assert_eq!(first[0].as_ref().expect("redeemed").index, 2);
    let second = store
        .append(vec![redemption("seal-q", 0)])
        .await
        .expect("append");
    assert_eq!(second[0], Err(Rejection::AlreadyRedeemed("seal-q".into())));
    let row = store.decision(&id).await.expect("read").expect("found");
    assert_eq!(row.redemption.expect("executed").index, 2);
    let r = row.resolution.expect("resolved");
    assert_eq!(r.index, 1);
    assert_eq!(
        r.seal,
        Some((
            "seal-q".to_owned(),
            "2030-01-01T00:00:00.000000Z".to_owned()
        ))
    );
}

pub async fn audit_query_filters_and_pages_newest_first(store: Arc<dyn Store>) {
    let mut batch = Vec::new();
    for i in 0..10u32 {
        let (agent, method, status, seal) = match i % 3 {
            0 => (
                "agent-1",
                "payment",
                Status::Approved,
                Some(format!("s{i}")),
            ),
            1 => ("agent-2", "payment", Status::Denied, None),
            _ => ("agent-1", "refund", Status::PendingApproval, None),
        };
        batch.push(decision(agent, method, status, seal.as_deref(), &t(i)));
    }
    store.append(batch).await.expect("append");
    store
        .append(vec![redemption("s3", 3)])
        .await
        .expect("redeem");

    let all = store
        .decisions(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("query");
    let idx: Vec<u64> = all.iter().map(|r| r.entry.index).collect();
    assert_eq!(
        idx,
        (0..10).rev().collect::<Vec<_>>(),
        "newest first, redemption entry excluded"
    );
    let redeemed: Vec<u64> = all
        .iter()
        .filter(|r| r.redemption.is_some())
        .map(|r| r.entry.index)
        .collect();
    assert_eq!(redeemed, vec![3]);

    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let count =
        |rows: Vec<crate::AuditRow>| rows.into_iter().map(|r| r.entry.index).collect::<Vec<_>>();
    assert_eq!(
        count(
            store
                .decisions(&q(|q| q.agent_id = Some("agent-2".into())))
                .await
                .expect("q")
        ),
        vec![7, 4, 1]
    );
    assert_eq!(
        count(
            store
                .decisions(&q(|q| q.method = Some("refund".into())))
                .await
                .expect("q")
        ),
        vec![8, 5, 2]
    );
    assert_eq!(
        count(
            store
                .decisions(&q(|q| q.status = Some(Status::Approved)))
                .await
                .expect("q")
        ),
        vec![9, 6, 3, 0]
    );
    assert_eq!(
        count(
            store
                .decisions(&q(|q| q.org_id = Some("other".into())))
                .await
                .expect("q")
        ),
        Vec::<u64>::new()
    );
    let window = q(|q| {
        q.since = Some(t(2));
        q.until = Some(t(4));
    });
    assert_eq!(
        count(store.decisions(&window).await.expect("q")),
        vec![4, 3, 2]
    );

    // Cursor pagination: pages of 4 walk the whole set once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .decisions(&AuditQuery {
                limit: 4,
                before,
                ..Default::default()
            })
            .await
            .expect("page");
        if page.is_empty() {
            break;
        }
        before = page.last().map(|r| r.entry.index);
        seen.extend(page.into_iter().map(|r| r.entry.index));
    }
    assert_eq!(seen, (0..10).rev().collect::<Vec<_>>());
}

pub async fn policies_are_stored_once_and_activation_is_latest(store: Arc<dyn Store>) {
    assert_eq!(store.active_policy().await.expect("active"), None);
    let p = |v: &str| NewPolicy {
        version: v.to_owned(),
        bundle: format!("{{\"v\":\"{v}\"}}").into_bytes(),
        uploaded_at: "2026-11-23T10:00:00.000000Z".into(),
        uploaded_by: "admin".into(),
    };
    assert!(store.put_policy(&p("v1")).await.expect("put"));
    assert!(
        !store.put_policy(&p("v1")).await.expect("put again"),
        "second upload of a version is a no-op"
    );
    assert!(store.put_policy(&p("v2")).await.expect("put"));
    assert_eq!(
        store
            .policy("v2")
            .await
            .expect("get")
            .expect("present")
            .bundle,
        p("v2").bundle
    );
    assert!(store.policy("v3").await.expect("get").is_none());
    assert_eq!(store.policies().await.expect("list").len(), 2);

    let activate = |v: &str, prev: Option<&str>| {
        NewEntry::new(Entry::PolicyActivated(PolicyActivation {
            server_time: "2026-11-23T10:00:01.000000Z".into(),
            version: v.to_owned(),
            previous_version: prev.map(str::to_owned),
            activated_by: "admin".into(),
        }))
        .expect("canonical")
    };
    store
        .append(vec![activate("v1", None)])
        .await
        .expect("activate");
    store
        .append(vec![activate("v2", Some("v1")), activate("v1", Some("v2"))])
        .await
        .expect("activate");
    let active = store.active_policy().await.expect("active").expect("one");
    assert_eq!(active.version, "v1", "rollback is the latest entry");
    assert_eq!(active.index, 2, "the index of the entry that activated it");
}

pub async fn keys_are_found_by_hash_until_revoked(store: Arc<dyn Store>) {
    assert_eq!(store.key_count().await.expect("count"), 0);
    let key = NewApiKey {
        id: "key-1".into(),
        role: Role::Executor,
        name: "payments executor".into(),
        token_hash: crate::token_hash("sgk_secret"),
        created_at: "2026-11-23T10:00:00.000000Z".into(),
    };
    store.create_key(&key).await.expect("create");
    let found = store
        .key_by_hash(&crate::token_hash("sgk_secret"))
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!((found.id.as_str(), found.role), ("key-1", Role::Executor));
    assert!(store
        .key_by_hash(&crate::token_hash("sgk_other"))
        .await
        .expect("lookup")
        .is_none());
    assert_eq!(
        store
            .revoke_key("key-1", "2026-11-23T11:00:00.000000Z")
            .await
            .expect("revoke"),
        Revocation::Revoked
    );
    assert_eq!(
        store
            .revoke_key("key-1", "2026-11-23T11:00:00.000000Z")
            .await
            .expect("revoke twice"),
        Revocation::NotLive
    );
    assert_eq!(
        store
            .revoke_key("key-never", "2026-11-23T11:00:00.000000Z")
            .await
            .expect("revoke unknown"),
        Revocation::NotLive
    );
    assert!(store
        .key_by_hash(&crate::token_hash("sgk_secret"))
        .await
        .expect("lookup")
        .is_none());
    assert_eq!(store.key_count().await.expect("count"), 1);
}

pub async fn the_last_live_admin_key_is_never_revoked(store: Arc<dyn Store>) {
    let admin = |id: &str| NewApiKey {
        id: id.into(),
        role: Role::Admin,
        name: id.into(),
        token_hash: crate::token_hash(&format!("sgk_{id}")),
        created_at: "2026-11-23T10:00:00.000000Z".into(),
    };
    let at = "2026-11-23T11:00:00.000000Z";
    store.create_key(&admin("admin-1")).await.expect("create");
    assert_eq!(
        store.revoke_key("admin-1", at).await.expect("revoke"),
        Revocation::LastAdmin
    );
    assert!(
        store
            .key_by_hash(&crate::token_hash("sgk_admin-1"))
            .await
            .expect("lookup")
            .is_some(),
        "a refused revocation revoked"
    );

    // Two admins revoking each other at the same moment, many times over: exactly one
    // revocation goes through each time.
    for round in 0..20 {
        let (a, b) = (format!("a-{round}"), format!("b-{round}"));
        store.create_key(&admin(&a)).await.expect("create");
        store.create_key(&admin(&b)).await.expect("create");
        // admin-1 stays live for the rounds that follow; revoke it for this one.
        if round == 0 {
            assert_eq!(
                store.revoke_key("admin-1", at).await.expect("revoke"),
                Revocation::Revoked
            );
        } else {
            let (pa, pb) = (format!("a-{}", round - 1), format!("b-{}", round - 1));
            for id in [pa, pb] {
                // One of the two is already gone.
                let r = store.revoke_key(&id, at).await.expect("revoke");
                assert!(
                    matches!(r, Revocation::Revoked | Revocation::NotLive),
                    "{id}: {r:?}"
                );
            }
        }
        let (s1, s2) = (store.clone(), store.clone());
        let (a2, b2) = (a.clone(), b.clone());
        let first = tokio::spawn(async move { s1.revoke_key(&a2, at).await.expect("revoke") });
        let second = tokio::spawn(async move { s2.revoke_key(&b2, at).await.expect("revoke") });
        let mut outcomes = [first.await.expect("join"), second.await.expect("join")];
        outcomes.sort_by_key(|r| *r as u8);
        assert_eq!(
            outcomes,
            [Revocation::Revoked, Revocation::LastAdmin],
            "round {round}"
        );
    }
}

pub async fn concurrent_appends_through_the_appender_stay_contiguous(store: Arc<dyn Store>) {
    let appender = Appender::spawn(store.clone(), 64, None);
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let appender = appender.clone();
            tokio::spawn(async move {
                let e = decision("f", "payment", Status::Denied, None, &t(i));
                let hash = e.leaf_hash;
                (
                    appender.append(e).await.expect("append").expect("accepted"),
                    hash,
                )
            })
        })
        .collect();
    let mut indices = Vec::new();
    for task in tasks {
        let (appended, hash) = task.await.expect("task");
        assert_eq!(appended.leaf_hash, hash);
        let stored = store
            .entry(appended.index)
            .await
            .expect("read")
            .expect("committed before the answer");
        assert_eq!(stored.leaf_hash, hash);
        indices.push(appended.index);
    }
    indices.sort_unstable();
    assert_eq!(indices, (0..200).collect::<Vec<u64>>());

    // Requesters that give up once their entry is handed over: `settle` returns only
    // after those entries committed all the same.
    for i in 200..220u32 {
        let e = decision("f", "payment", Status::Denied, None, &t(i));
        let mut handed = std::pin::pin!(appender.append(e));
        // One poll hands the entry over (the channel has room); the answer, if it is
        // not there yet, is dropped unread.
        let waker = std::task::Waker::noop();
        let _ = handed
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker));
    }
    appender.settle().await;
    assert_eq!(store.tree_size().await.expect("size"), 220);
}

/// The spot checks (entry and consistency) hold for every entry and every pair of
/// sizes of an untouched ledger, and name a root that is not the tree's.
pub async fn spot_checks_hold_for_the_signed_trees_and_name_what_does_not(store: Arc<dyn Store>) {
    use crate::spot_check::{check_consistency, check_entry};
    use sealgate_ledger::Frontier;
    let mut reference = Frontier::new();
    let mut roots = vec![reference.root()];
    for (b, batch_len) in [3usize, 1, 7, 2].into_iter().enumerate() {
        // Entry 4 grants a seal and entry 11 redeems it, so the seal rows are checked too.
        let batch: Vec<NewEntry> = (0..batch_len)
            .map(|i| match (b, i) {
                (2, 0) => decision("s", "payment", Status::Approved, Some("spot-seal"), &t(20)),
                (3, 0) => redemption("spot-seal", 4),
                _ => decision(
                    "s",
                    "payment",
                    Status::Denied,
                    None,
                    &t((b * 10 + i) as u32),
                ),
            })
            .collect();
        for e in &batch {
            reference.push(e.leaf_hash);
            roots.push(reference.root());
        }
        store.append(batch).await.expect("append");
    }
    let size = (roots.len() - 1) as u64;
    let root = roots[size as usize];
    let mut wrong = root;
    wrong[0] ^= 1;
    for index in 0..size {
        assert_eq!(
            check_entry(&*store, index, size, &root)
                .await
                .expect("read"),
            None
        );
        let finding = check_entry(&*store, index, size, &wrong)
            .await
            .expect("read");
        assert!(finding.is_some_and(|f| f.contains(&format!("entry {index}"))));
    }
    let finding = check_entry(&*store, size, size + 1, &root)
        .await
        .expect("read");
    assert!(
        finding.is_some_and(|f| f.contains("missing")),
        "beyond the end"
    );
    for m in 0..=size {
        for n in m..=size {
            let (rm, rn) = (roots[m as usize], roots[n as usize]);
            assert_eq!(
                check_consistency(&*store, (m, rm), (n, rn))
                    .await
                    .expect("read"),
                None,
                "{m} to {n}"
            );
            if m > 0 {
                let mut bad = rm;
                bad[31] ^= 0x80;
                let finding = check_consistency(&*store, (m, bad), (n, rn))
                    .await
                    .expect("read");
                assert!(finding.is_some(), "a wrong root of {m} against {n}");
            }
        }
    }
    let finding = check_consistency(&*store, (size, root), (size - 1, roots[size as usize - 1]))
        .await
        .expect("read");
    assert!(finding.is_some_and(|f| f.contains("shrank")));
}

pub async fn tree_nodes_give_roots_and_proofs_for_every_size(store: Arc<dyn Store>) {
    use sealgate_ledger::{inclusion_plan, root_plan, verify_inclusion, Frontier};
    let mut reference = Frontier::new();
    let mut roots = vec![reference.root()];
    let mut leaves = Vec::new();
    let mut i = 0u32;
    for batch_len in [1usize, 2, 3, 5, 8, 13, 1, 4] {
        let batch: Vec<NewEntry> = (0..batch_len)
            .map(|_| {
                i += 1;
                decision("g", "payment", Status::Denied, None, &t(i))
            })
            .collect();
        for e in &batch {
            reference.push(e.leaf_hash);
            roots.push(reference.root());
            leaves.push(e.leaf_hash);
        }
        store.append(batch).await.expect("append");
    }
    let size = leaves.len() as u64;
    let fetch = |plan: &sealgate_ledger::ProofPlan| {
        let store = store.clone();
        let ids = plan.nodes().to_vec();
        async move {
            let hashes = store.nodes(&ids).await.expect("nodes");
            ids.into_iter()
                .zip(hashes)
                .filter_map(|(id, h)| h.map(|h| (id, h)))
                .collect::<std::collections::HashMap<_, _>>()
        }
    };
    for n in 0..=size {
        let plan = root_plan(n);
        let got = fetch(&plan).await;
        let root = plan
            .assemble(|id| got.get(&id).copied())
            .expect("root from stored nodes");
        assert_eq!(
            root.first().copied().unwrap_or(sealgate_ledger::EMPTY_ROOT),
            roots[n as usize],
            "root at size {n}"
        );
        for index in 0..n {
            let plan = inclusion_plan(index, n).expect("plan");
            let got = fetch(&plan).await;
            let proof = plan
                .assemble(|id| got.get(&id).copied())
                .expect("proof from stored nodes");
            verify_inclusion(
                &leaves[index as usize],
                index,
                n,
                &proof,
                &roots[n as usize],
            )
            .unwrap_or_else(|e| panic!("inclusion of {index} in {n}: {e}"));
        }
    }
}

pub async fn checkpoints_are_kept_in_order(store: Arc<dyn Store>) {
    assert!(store.latest_checkpoint().await.expect("latest").is_none());
    for (size, note) in [(1u64, "one"), (5, "five"), (3, "three")] {
        store
            .put_checkpoint(&crate::NewCheckpoint {
                tree_size: size,
                note: note.into(),
                created_at: "2026-11-23T10:00:00.000000Z".into(),
            })
            .await
            .expect("put");
    }
    assert_eq!(
        store
            .latest_checkpoint()
            .await
            .expect("latest")
            .expect("some")
            .note,
        "five"
    );
    let all: Vec<String> = store
        .checkpoints()
        .await
        .expect("all")
        .into_iter()
        .map(|c| c.note)
        .collect();
    assert_eq!(all, vec!["one", "five", "three"]);
}
