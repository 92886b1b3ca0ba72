//! Signed-note and checkpoint vectors from signed_note_vectors.txt: the C2SP spec
//! example, the golang.org/x/mod note tests (including the deterministic signing
//! vector and its negative cases), the sumdb test key, and checkpoint bodies.

use std::fs;

use sealgate_ledger::note::{self, KeyId, NoteError, NoteSigner, NoteVerifier};
use sealgate_ledger::{leaf_hash, Checkpoint};

use crate::support::tlog_dir;

/// One numbered section of the vector file.
#[derive(Debug, Default)]
struct Section {
    title: String,
    vkeys: Vec<String>,
    skeys: Vec<String>,
    notes: Vec<String>,
}

fn sections() -> Option<Vec<Section>> {
    let dir = tlog_dir()?;
    let text = fs::read_to_string(dir.join("signed_note_vectors.txt")).expect("vector file");
    let mut sections: Vec<Section> = Vec::new();
    let mut note: Option<String> = None;
    for line in text.lines() {
        if let Some(body) = note.as_mut() {
            if line == "END" {
                let done = note.take().unwrap_or_default();
                sections.last_mut().expect("section").notes.push(done);
            } else {
                body.push_str(line);
                body.push('\n');
            }
        } else if let Some(title) = line.strip_prefix("## ") {
            sections.push(Section {
                title: title.to_owned(),
                ..Section::default()
            });
        } else if let Some(vkey) = line.strip_prefix("VKEY ") {
            sections
                .last_mut()
                .expect("section")
                .vkeys
                .push(vkey.to_owned());
        } else if let Some(skey) = line.strip_prefix("SKEY ") {
            sections
                .last_mut()
                .expect("section")
                .skeys
                .push(skey.to_owned());
        } else if line == "BEGIN" {
            note = Some(String::new());
        }
    }
    assert_eq!(sections.len(), 5, "vector sections changed");
    Some(sections)
}

fn verifier(vkey: &str) -> NoteVerifier {
    vkey.parse()
        .unwrap_or_else(|e| panic!("vkey {vkey} refused: {e}"))
}

#[test]
fn spec_example_verifies_and_key_id_rule_holds() {
    let Some(sections) = sections() else { return };
    let s = &sections[0];
    assert!(s.title.starts_with("1."), "{}", s.title);
    let v = verifier(&s.vkeys[0]);
    assert_eq!(v.name(), "example.com/foo");
    assert_eq!(v.key_id(), KeyId(0x530d_903a));
    assert_eq!(KeyId::ed25519(v.name(), v.key()), v.key_id());
    assert_eq!(v.to_string(), s.vkeys[0]);

    let opened = note::open(&s.notes[0], std::slice::from_ref(&v)).expect("spec example verifies");
    assert_eq!(opened.text, "This is an example message.\n");
    assert_eq!(opened.signatures.len(), 1);

    let tampered = s.notes[0].replace("example message", "example massage");
    assert!(matches!(
        note::open(&tampered, &[v]),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn go_note_vectors_verify_and_signing_is_reproduced() {
    let Some(sections) = sections() else { return };
    let s = &sections[1];
    assert!(s.title.starts_with("2."), "{}", s.title);
    let peter = verifier(&s.vkeys[0]);
    let enoch = verifier(&s.vkeys[1]);
    assert_eq!(peter.key_id(), KeyId(0xc74f_20a3));
    assert_eq!(enoch.key_id(), KeyId(0xaf0c_fe78));
    for v in [&peter, &enoch] {
        assert_eq!(KeyId::ed25519(v.name(), v.key()), v.key_id());
    }

    let signer = NoteSigner::from_private_key(&s.skeys[0]).expect("skey parses");
    assert_eq!(signer.verifier(), peter);
    assert_eq!(signer.to_private_key(), s.skeys[0]);

    let msg = &s.notes[0];
    let opened = note::open(msg, &[peter.clone(), enoch.clone()]).expect("note verifies");
    let text = "If you think cryptography is the answer to your problem,\n\
                then you don't know what your problem is.\n";
    assert_eq!(opened.text, text);
    let names: Vec<&str> = opened.signatures.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["PeterNeumann", "EnochRoot"]);

    // Ed25519 is deterministic: signing the text reproduces the note's signature.
    let peter_line = msg
        .lines()
        .find(|l| l.contains("PeterNeumann"))
        .expect("sig line");
    assert_eq!(
        signer.signature_line(text).expect("signs"),
        format!("{peter_line}\n")
    );
    let signed = signer.sign(text).expect("signs");
    assert_eq!(signed, format!("{text}\n{peter_line}\n"));
    assert!(msg.starts_with(&signed));

    // One known key is enough; the other signature is kept as unverified.
    let only_enoch = note::open(msg, std::slice::from_ref(&enoch)).expect("verifies with one key");
    assert_eq!(only_enoch.signatures.len(), 1);
    assert_eq!(only_enoch.unverified.len(), 1);
    assert_eq!(only_enoch.unverified[0].name, "PeterNeumann");
}

#[test]
fn go_note_negative_cases_fail() {
    let Some(sections) = sections() else { return };
    let s = &sections[1];
    let peter = verifier(&s.vkeys[0]);
    let enoch = verifier(&s.vkeys[1]);
    let msg = &s.notes[0];
    let split = msg.rfind("\n\n").expect("blank line") + 2;
    let (text, sigs) = msg.split_at(split);
    let peter_sig = sigs.lines().next().expect("first sig").to_owned() + "\n";

    // More than 100 signatures: malformed.
    let many = format!("{text}{}", peter_sig.repeat(101));
    assert!(matches!(
        note::open(&many, std::slice::from_ref(&peter)),
        Err(NoteError::Malformed(_))
    ));
    // 100 repeated signatures are fine (repeats count once).
    let hundred = format!("{text}{}", peter_sig.repeat(100));
    assert_eq!(
        note::open(&hundred, std::slice::from_ref(&peter)).map(|n| n.signatures.len()),
        Ok(1)
    );

    // Corrupted signature (ABCD inserted at offset 60): invalid signature.
    let corrupt = format!("{}ABCD{}", &peter_sig[..60], &peter_sig[60..]);
    let err = note::open(format!("{text}{corrupt}"), &[peter.clone(), enoch.clone()])
        .expect_err("corrupted signature");
    assert_eq!(
        err,
        NoteError::InvalidSignature {
            name: "PeterNeumann".into(),
            key_id: KeyId(0xc74f_20a3)
        }
    );
    assert_eq!(
        err.to_string(),
        "invalid signature for key PeterNeumann+c74f20a3"
    );

    // Duplicate verifier: ambiguous key.
    let err =
        note::open(msg, &[peter.clone(), enoch.clone(), enoch.clone()]).expect_err("ambiguous");
    assert_eq!(err.to_string(), "ambiguous key EnochRoot+af0cfe78");

    // No known key: rejected.
    let other =
        NoteSigner::new("other", ed25519_dalek::SigningKey::from_bytes(&[9; 32])).expect("signer");
    assert_eq!(
        note::open(msg, &[other.verifier()]),
        Err(NoteError::UnknownKeys)
    );

    // Same name, different key ID, and same ID, different name: ignored as unknown.
    let renamed = msg.replace("— EnochRoot", "— EnochRoot2");
    assert_eq!(
        note::open(&renamed, std::slice::from_ref(&enoch)),
        Err(NoteError::UnknownKeys)
    );

    // Structural damage.
    let known = [peter, enoch];
    for (bad, why) in [
        (msg.trim_end_matches('\n').to_owned(), "no final newline"),
        (msg.replacen("\n\n", "\n", 1), "no blank line"),
        (msg.replace("— ", "- "), "ASCII hyphen"),
        (msg.replace("— ", "—"), "no space after the dash"),
        (
            msg.replace("PeterNeumann ", "PeterNeumann"),
            "no space before sig",
        ),
        (msg.replace("If you", "If\tyou"), "control character"),
        (format!("{msg}\n"), "trailing blank line"),
        (text.to_owned(), "no signatures"),
        (
            msg.replace("PeterNeumann x08go", "PeterNeumann !!!!"),
            "not base64",
        ),
        (format!("{text}— PeterNeumann AAAA\n"), "short signature"),
    ] {
        assert!(
            matches!(note::open(&bad, &known), Err(NoteError::Malformed(_))),
            "{why}: {:?}",
            note::open(&bad, &known)
        );
    }
    assert!(note::open([0xffu8, b'\n', b'\n'], &known).is_err());
}

#[test]
fn sumdb_test_key_round_trips() {
    let Some(sections) = sections() else { return };
    let s = &sections[2];
    let v = verifier(&s.vkeys[0]);
    assert_eq!(v.key_id(), KeyId(0x0000_0c67));
    assert_eq!(KeyId::ed25519(v.name(), v.key()), v.key_id());
    let signer = NoteSigner::from_private_key(&s.skeys[0]).expect("skey parses");
    assert_eq!(signer.verifier(), v);
    assert_eq!(signer.to_private_key(), s.skeys[0]);

    let note = signer.sign("hello\n").expect("signs");
    assert!(note::open(&note, &[v]).is_ok());

    // A key ID that does not match the key is refused.
    let wrong = s.vkeys[0].replace("+00000c67+", "+00000c68+");
    assert!(matches!(
        wrong.parse::<NoteVerifier>(),
        Err(NoteError::KeyIdMismatch { .. })
    ));
    let wrong = s.skeys[0].replace("+00000c67+", "+00000c68+");
    assert!(NoteSigner::from_private_key(&wrong).is_err());
}

#[test]
fn sumdb_tree_body_parses_as_a_checkpoint() {
    let Some(sections) = sections() else { return };
    let body = &sections[3].notes[0];
    let checkpoint = Checkpoint::parse(body).expect("body parses");
    assert_eq!(checkpoint.origin, "go.sum database tree");
    assert_eq!(checkpoint.size, 123_456_789_012);
    assert_eq!(checkpoint.root, leaf_hash(b"hello world"));
    assert_eq!(checkpoint.body().expect("formats"), *body);
}

#[test]
fn c2sp_checkpoint_example_parses() {
    let Some(sections) = sections() else { return };
    let msg = &sections[4].notes[0];
    // The spec publishes no keys: the note is well formed but has no known signer.
    assert_eq!(note::open(msg, &[]), Err(NoteError::UnknownKeys));
    let text = &msg[..=msg.rfind("\n\n").expect("blank line")];
    let checkpoint = Checkpoint::parse(text).expect("checkpoint parses");
    assert_eq!(checkpoint.origin, "example.com/behind-the-sofa");
    assert_eq!(checkpoint.size, 20_852_163);
    assert_eq!(checkpoint.body().expect("formats"), text);
}

#[test]
fn signed_checkpoint_round_trips() {
    let signer = NoteSigner::new(
        "sealgate.example/ledger",
        ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
    )
    .expect("signer");
    let checkpoint = Checkpoint::new("sealgate.example/ledger", 42, leaf_hash(b"x"));
    let signed = checkpoint.sign(&signer).expect("signs");
    let (opened, note) =
        Checkpoint::open(&signed, "sealgate.example/ledger", &[signer.verifier()]).expect("opens");
    assert_eq!(opened, checkpoint);
    assert_eq!(note.signatures.len(), 1);
    assert!(Checkpoint::open(&signed, "other.example/log", &[signer.verifier()]).is_err());
}
