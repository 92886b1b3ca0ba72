//! Bundle versions: stable over content, sensitive to every byte, blind to key order.

use std::collections::BTreeMap;

use serde_json::json;

use sealgate_policy::{Bundle, PolicyVersion, PreparedPolicy};

use crate::support::finance_source;

fn finance_bundle() -> Bundle {
    Bundle::from_files([("finance.rego", finance_source())]).unwrap()
}

#[test]
fn same_content_same_version() {
    let a = finance_bundle();
    let b = finance_bundle();
    assert_eq!(a.version(), b.version());
    assert_eq!(a.canonical_bytes(), b.canonical_bytes());
    assert_eq!(PreparedPolicy::prepare(&a).unwrap().version(), a.version());
}

#[test]
fn any_byte_change_changes_the_version() {
    let source = finance_source();
    let base = finance_bundle();
    // Flip one byte at a spread of positions (staying ASCII so it is still a String).
    for at in (0..source.len()).step_by(97) {
        let mut bytes = source.clone().into_bytes();
        bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
        let changed =
            Bundle::from_files([("finance.rego", String::from_utf8(bytes).unwrap())]).unwrap();
        assert_ne!(changed.version(), base.version(), "byte {at}");
    }
    let renamed = Bundle::from_files([("finance2.rego", source.clone())]).unwrap();
    assert_ne!(renamed.version(), base.version());
    let with_data = base.clone().with_data(json!({})).unwrap();
    assert_ne!(with_data.version(), base.version());
    let trailing = Bundle::from_files([("finance.rego", format!("{source}\n"))]).unwrap();
    assert_ne!(trailing.version(), base.version());
}

#[test]
fn key_order_and_whitespace_do_not_matter() {
    let a: Bundle = serde_json::from_str(
        r#"{"files": {"a.rego": "package a", "b.rego": "package b"},
            "data": {"x": 1, "y": {"p": true, "q": [1, 2]}}}"#,
    )
    .unwrap();
    let b: Bundle = serde_json::from_str(
        r#"{"data":{"y":{"q":[1,2],"p":true},"x":1},"files":{"b.rego":"package b","a.rego":"package a"}}"#,
    )
    .unwrap();
    assert_eq!(a.version(), b.version());
    assert_eq!(a.canonical_bytes(), b.canonical_bytes());
}

#[test]
fn serde_round_trip_keeps_the_version() {
    let bundle = finance_bundle()
        .with_data(json!({"k": [1, "two"]}))
        .unwrap();
    let json = serde_json::to_string(&bundle).unwrap();
    let back: Bundle = serde_json::from_str(&json).unwrap();
    assert_eq!(back, bundle);
    assert_eq!(back.version(), bundle.version());
}

#[test]
fn deserializing_validates() {
    for bad in [
        r#"{"files": {"../x.rego": "package x"}}"#,
        r#"{"files": {"x.rego": "package x"}, "data": [1]}"#,
        r#"{"files": {"x.rego": "package x"}, "extra": 1}"#,
        r#"{"files": {"x.rego": "package x"}, "data": {"n": 18014398509481984}}"#,
    ] {
        assert!(serde_json::from_str::<Bundle>(bad).is_err(), "{bad}");
    }
}

#[test]
fn version_known_answer() {
    // sha256 of {"data":null,"files":{"p.rego":"package sealgate"}}
    let bundle = Bundle::new(
        BTreeMap::from([("p.rego".to_owned(), "package sealgate".to_owned())]),
        None,
    )
    .unwrap();
    // Computed independently: printf '%s' '<canonical>' | sha256sum
    let expected =
        PolicyVersion::try_from("c4ecf8c394683199007024c4f270605f5ef2a00367f2e2a3f9349bcead67242c")
            .unwrap();
    assert_eq!(bundle.version(), &expected);
    let text = std::str::from_utf8(bundle.canonical_bytes()).unwrap();
    assert_eq!(
        text,
        r#"{"data":null,"files":{"p.rego":"package sealgate"}}"#
    );
}
