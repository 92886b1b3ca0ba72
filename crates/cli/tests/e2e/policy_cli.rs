//! `sealgate policy push|list|activate` against a running server: a directory of Rego
//! becomes a bundle, activation decides the next manifest, and bad input is refused
//! before anything is sent (exit 2) or by the server (exit 1).

use serde_json::{json, Value};

use crate::support::{manifest, Server, BIN};

/// Runs `sealgate policy ARGS --server <server>` as admin: exit code, stdout, stderr.
async fn policy(server: &Server, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(BIN)
        .arg("policy")
        .args(args)
        .arg("--server")
        .arg(&server.base)
        .env("SEALGATE_TOKEN", &server.admin_token)
        .env_remove("SEALGATE_SERVER")
        .output()
        .await
        .expect("run sealgate policy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const STRICT: &str = r#"package sealgate

import rego.v1

default decision := {"approved": false, "reasons": ["nothing is allowed above the limit in data"]}

decision := {"approved": true, "reasons": []} if {
    input.manifest.parameters.amount <= data.limits.max_amount
}
"#;

#[tokio::test]
async fn a_directory_of_rego_is_pushed_activated_listed_and_rolled_back() {
    let server = Server::start().await;
    let agent = server.create_key("agent").await;
    let (code, out, err) = policy(&server, &["list"]).await;
    assert_eq!(code, 0, "{err}");
    let before: Value = serde_json::from_str(&out).expect("list is JSON");
    let shipped = before["active"]
        .as_str()
        .expect("an active policy")
        .to_owned();

    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("bundle");
    std::fs::create_dir_all(rules.join("lib")).unwrap();
    std::fs::write(rules.join("main.rego"), STRICT).unwrap();
    std::fs::write(
        rules.join("lib/util.rego"),
        "package sealgate.util\n\nimport rego.v1\n\nhalf(x) := x / 2\n",
    )
    .unwrap();
    std::fs::write(rules.join("README.md"), "not Rego: left out").unwrap();
    let data = dir.path().join("data.json");
    std::fs::write(&data, r#"{"limits": {"max_amount": 300}}"#).unwrap();

    let (code, out, err) = policy(
        &server,
        &[
            "push",
            rules.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--activate",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let pushed: Value = serde_json::from_str(&out).expect("push answers JSON");
    let version = pushed["version"].as_str().expect("version").to_owned();
    assert_eq!(pushed["created"], json!(true), "{out}");
    assert_eq!(pushed["activation"]["version"], json!(version), "{out}");
    assert_eq!(
        pushed["activation"]["previous_version"],
        json!(shipped),
        "{out}"
    );

    // The pushed policy decides now: the data's limit, not the shipped one.
    let over = server
        .validate(&agent, &manifest("cli-policy", "payment", 400))
        .await
        .expect(200);
    assert_eq!(over.json["approved"], json!(false), "{}", over.text);
    assert_eq!(over.json["policy_version"], json!(version), "{}", over.text);

    // The same bundle again is the same version, not a new one.
    let (code, out, _) = policy(
        &server,
        &[
            "push",
            rules.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0);
    let again: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["version"], json!(version));
    assert_eq!(again["created"], json!(false));

    let (code, out, _) = policy(&server, &["list"]).await;
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["active"], json!(version), "{out}");

    // Rolling back is activating the older version.
    let (code, out, err) = policy(&server, &["activate", &shipped]).await;
    assert_eq!(code, 0, "{err}");
    let rolled: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rolled["previous_version"], json!(version), "{out}");
    let r = server
        .validate(&agent, &manifest("cli-policy", "payment", 1000))
        .await
        .expect(200);
    assert_eq!(r.json["policy_version"], json!(shipped), "{}", r.text);
}

#[tokio::test]
async fn bad_bundles_are_refused_saying_why() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    std::fs::write(path("broken.rego"), "package sealgate\n\ndecision := {\n").unwrap();
    std::fs::create_dir(path("empty")).unwrap();
    std::fs::write(path("list.json"), "[1, 2]").unwrap();
    std::fs::write(path("ok.rego"), STRICT).unwrap();
    std::fs::create_dir(path("other")).unwrap();
    std::fs::write(dir.path().join("other/ok.rego"), STRICT).unwrap();
    // A repository root: a hidden directory's Rego is a name the server refuses.
    std::fs::create_dir_all(dir.path().join("repo/.github")).unwrap();
    std::fs::write(dir.path().join("repo/main.rego"), STRICT).unwrap();
    std::fs::write(dir.path().join("repo/.github/x.rego"), STRICT).unwrap();
    std::fs::create_dir(path("linked")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("other"), dir.path().join("linked/lib")).unwrap();
    let huge = "# padding\n".repeat(110_000);
    std::fs::write(path("huge.rego"), format!("{STRICT}{huge}")).unwrap();
    // Two files within the per-file limit make a request over the server's body limit.
    std::fs::create_dir(path("big")).unwrap();
    let padding = "# padding\n".repeat(60_000);
    for name in ["a.rego", "b.rego"] {
        std::fs::write(
            dir.path().join("big").join(name),
            format!("{STRICT}{padding}"),
        )
        .unwrap();
    }

    // Refused here, before anything is sent: exit 2.
    for (args, says) in [
        (vec!["push", &path("missing.rego")], "cannot read"),
        (vec!["push", &path("empty")], "holds no .rego file"),
        (
            vec!["push", &path("ok.rego"), "--data", &path("list.json")],
            "must be a JSON object",
        ),
        (
            vec!["push", &path("ok.rego"), &path("other")],
            "both be named \"ok.rego\"",
        ),
        (vec!["activate", "not-a-version"], "not a policy version"),
        (vec!["push", &path("repo")], ".github/x.rego"),
        (
            vec!["push", &path("linked")],
            "symbolic link to a directory",
        ),
        (
            vec!["push", &path("huge.rego")],
            "a policy file holds at most 1048576",
        ),
        (
            vec!["push", &path("big")],
            "the server takes at most 1048576",
        ),
    ] {
        let (code, _, err) = policy(&server, &args).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Refused by the server: exit 1 with its problem, and nothing activated.
    let (code, _, err) = policy(&server, &["push", &path("broken.rego"), "--activate"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("422") && err.contains("does not compile: broken.rego"),
        "{err}"
    );
    assert!(!err.contains("uploaded as"), "nothing was uploaded: {err}");
    let unknown = "0".repeat(64);
    let (code, _, err) = policy(&server, &["activate", &unknown]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("404"), "{err}");
}
