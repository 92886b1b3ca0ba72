//! Secret and PII detectors: text in, typed spans out.
//!
//! Owns the detector table ([`SecretKind`] → pattern + validator), the
//! checksums that keep the noisy kinds precise (Luhn for card numbers,
//! ISO 7064 mod-97 for IBANs, SSN area/group/serial rules, IP octet ranges,
//! JWT header decoding), placeholder rejection (`xxxx`, `${VAR}`,
//! `<password>`), and overlap resolution (a JWT is not also reported as a
//! high-entropy token). Spans are byte offsets into the input; callers that
//! report findings must use only the kind, never the text.
//!
//! Each detector has a gate (see [`Gate`]): anchor literals found by one
//! Aho-Corasick pass, or runs of the bytes its pattern can match, so a
//! regex only runs where it can match; a clean text costs one automaton
//! pass and a few byte-class scans.

use std::net::Ipv6Addr;
use std::panic::{RefUnwindSafe, UnwindSafe};

use aho_corasick::{AhoCorasick, Input as AcInput, MatchKind};
use base64::Engine as _;
use regex_automata::util::{pool::Pool, syntax};
use regex_automata::{meta, Anchored, Input};
use serde::{Deserialize, Serialize};

use crate::scan::{find_byte, find_digit, long_runs};
use crate::ScreenError;

/// The kinds of secret or PII the screener detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SecretKind {
    /// AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKey,
    /// AWS secret access key in an assignment (`aws_secret_access_key = …`).
    AwsSecretKey,
    /// JSON Web Token (header must decode to a JSON object).
    Jwt,
    /// GitHub personal, OAuth, app and refresh tokens.
    GithubToken,
    /// GitLab tokens (`glpat-`, `gldt-`, runner, trigger, OAuth…).
    GitlabToken,
    /// Slack bot, user, app, config and legacy tokens.
    SlackToken,
    /// Slack incoming-webhook or workflow URL.
    SlackWebhook,
    /// Stripe secret or restricted key (`sk_live_`, `rk_test_`…).
    StripeKey,
    /// OpenAI API key.
    OpenaiKey,
    /// Anthropic API key.
    AnthropicKey,
    /// sealgate's own API token (`sgk_` and 43 base64url characters): an agent must
    /// not put one where every auditor reads it for ever.
    SealgateToken,
    /// PEM / PGP / OpenSSH private key block.
    PrivateKey,
    /// Password, secret, token or API key in a `key = value` pair or a
    /// JSON object member whose name says it is a credential.
    Password,
    /// Password inside a URL (`scheme://user:pass@host`) or `curl -u user:pass`.
    UrlPassword,
    /// Long random-looking token not claimed by a more specific detector.
    HighEntropyToken,
    /// E-mail address.
    Email,
    /// Payment card number (Luhn-valid, known issuer prefix).
    CreditCard,
    /// US social security number.
    UsSsn,
    /// Telephone number (NANP and `+CC` international forms).
    PhoneNumber,
    /// IBAN (country length and mod-97 checksum valid).
    Iban,
    /// IPv4 or IPv6 address.
    IpAddress,
}

impl SecretKind {
    /// Every kind, in priority order (earlier wins an overlap).
    pub const ALL: [SecretKind; 21] = [
        SecretKind::PrivateKey,
        SecretKind::Jwt,
        SecretKind::AwsAccessKey,
        SecretKind::AwsSecretKey,
        SecretKind::GithubToken,
        SecretKind::GitlabToken,
        SecretKind::SlackWebhook,
        SecretKind::SlackToken,
        SecretKind::StripeKey,
        SecretKind::AnthropicKey,
        SecretKind::OpenaiKey,
        SecretKind::SealgateToken,
        SecretKind::UrlPassword,
        SecretKind::Password,
        SecretKind::Iban,
        SecretKind::CreditCard,
        SecretKind::Email,
        SecretKind::UsSsn,
        SecretKind::IpAddress,
        SecretKind::PhoneNumber,
        SecretKind::HighEntropyToken,
    ];

    /// The snake_case name used in reports, scrub masks and redaction markers.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::AwsAccessKey => "aws_access_key",
            SecretKind::AwsSecretKey => "aws_secret_key",
            SecretKind::Jwt => "jwt",
            SecretKind::GithubToken => "github_token",
            SecretKind::GitlabToken => "gitlab_token",
            SecretKind::SlackToken => "slack_token",
            SecretKind::SlackWebhook => "slack_webhook",
            SecretKind::StripeKey => "stripe_key",
            SecretKind::OpenaiKey => "openai_key",
            SecretKind::AnthropicKey => "anthropic_key",
            SecretKind::SealgateToken => "sealgate_token",
            SecretKind::PrivateKey => "private_key",
            SecretKind::Password => "password",
            SecretKind::UrlPassword => "url_password",
            SecretKind::HighEntropyToken => "high_entropy_token",
            SecretKind::Email => "email",
            SecretKind::CreditCard => "credit_card",
            SecretKind::UsSsn => "us_ssn",
            SecretKind::PhoneNumber => "phone_number",
            SecretKind::Iban => "iban",
            SecretKind::IpAddress => "ip_address",
        }
    }

    /// Parses a snake_case name.
    pub fn from_name(name: &str) -> Option<SecretKind> {
        SecretKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the kind is a credential (as opposed to personal data).
    pub fn is_credential(self) -> bool {
        !matches!(
            self,
            SecretKind::Email
                | SecretKind::CreditCard
                | SecretKind::UsSsn
                | SecretKind::PhoneNumber
                | SecretKind::Iban
                | SecretKind::IpAddress
        )
    }

    fn priority(self) -> usize {
        SecretKind::ALL
            .iter()
            .position(|k| *k == self)
            .unwrap_or(usize::MAX)
    }
}

impl std::fmt::Display for SecretKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One detected span: byte offsets `[start, end)` into the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretMatch {
    /// What was found.
    pub kind: SecretKind,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

type Validator = fn(text: &str, start: usize, end: usize) -> bool;

struct Spec {
    kind: SecretKind,
    pattern: &'static str,
    group: usize,
    validate: Validator,
    gate: Gate,
}

/// Where a detector's pattern can match at all: a cheap necessary condition
/// checked before the regex runs, so the result is the same as running it
/// over the whole text.
#[derive(Clone, Copy)]
enum Gate {
    /// Every match contains, for each group, one of its literals (ASCII
    /// case-insensitively); the regex runs over the whole text when all
    /// groups occur.
    Anchors(&'static [&'static [&'static str]]),
    /// Every byte of every match is in `class` (apart from `pad` bytes of
    /// context consumed before and after), and the maximal run of `class`
    /// bytes holding a match satisfies `seed`, which implies `trigger`: the
    /// regex runs only over such runs (widened by `pad`), with the whole
    /// text as look-around context. Runs are found from their triggers, so
    /// text without them costs a fast byte search or a sparse probe.
    Runs {
        class: fn(u8) -> bool,
        seed: fn(&[u8]) -> bool,
        pad: usize,
        trigger: Trigger,
    },
}

/// What every run satisfying a [`Gate::Runs`] seed holds.
#[derive(Clone, Copy)]
enum Trigger {
    /// This byte (which is in the class).
    Byte(u8),
    /// An ASCII digit (digits are in the class).
    Digit,
    /// At least this many bytes.
    MinLen(usize),
}

const QUOTES: &[&str] = &["\"", "'", "`"];
const CREDENTIAL_WORDS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "api_key",
    "apikey",
    "access_key",
    "accesskey",
    "private_key",
    "privatekey",
    "token",
    "credential",
];
const BARE_CREDENTIAL_WORDS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "api_key",
    "apikey",
    "access_key",
    "accesskey",
    "private_key",
    "privatekey",
    "token",
    "credential",
];

fn aws_id_class(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'/' || b == b'+'
}
fn aws_id_seed(run: &[u8]) -> bool {
    run.len() == 20 && run[0] == b'A'
}
fn iban_class(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'-'
}
/// Two capitals and two digits at a word start (the pattern's
/// `\b[A-Z]{2}\d{2}`; the run's first byte may start a word).
fn iban_seed(run: &[u8]) -> bool {
    run.windows(4).enumerate().any(|(i, w)| {
        w[0].is_ascii_uppercase()
            && w[1].is_ascii_uppercase()
            && w[2].is_ascii_digit()
            && w[3].is_ascii_digit()
            && (i == 0 || !run[i - 1].is_ascii_alphanumeric())
    })
}
fn digit_count(run: &[u8]) -> usize {
    run.iter().filter(|b| b.is_ascii_digit()).count()
}
fn card_class(b: u8) -> bool {
    b.is_ascii_digit() || b == b' ' || b == b'-'
}
fn card_seed(run: &[u8]) -> bool {
    digit_count(run) >= 13
}
fn email_class(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-' | b'@')
}
fn email_seed(run: &[u8]) -> bool {
    run.contains(&b'@')
}
fn ssn_class(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b' ' | b'.' | b'-')
}
fn ssn_seed(run: &[u8]) -> bool {
    digit_count(run) >= 9
}
fn ipv4_class(b: u8) -> bool {
    b.is_ascii_digit() || b == b'.' || b == b'/'
}
fn ipv4_seed(run: &[u8]) -> bool {
    digit_count(run) >= 4 && run.iter().filter(|b| **b == b'.').count() >= 3
}
fn ipv6_class(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'%' | b'.' | b'/')
}
/// A validated address starts at the run start or after `%`, `.` or `/`
/// (the validator refuses one after a letter, digit or colon) with hex
/// digits and colons holding two colons (`(?:[0-9A-Fa-f]{0,4}:){2,7}`).
fn ipv6_seed(run: &[u8]) -> bool {
    (0..run.len())
        .filter(|&i| i == 0 || matches!(run[i - 1], b'%' | b'.' | b'/'))
        .any(|i| {
            run[i..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit() || **b == b':')
                .filter(|b| **b == b':')
                .count()
                >= 2
        })
}
fn phone_class(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b' ' | b'.' | b'-' | b'(' | b')' | b'+')
}
/// The validator wants at least 8 digits (international) or 9.
fn phone_seed(run: &[u8]) -> bool {
    digit_count(run) >= 8
}
fn token_class(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'-' | b'=')
}
fn token_seed(run: &[u8]) -> bool {
    run.len() >= 24
}

fn always(_: &str, _: usize, _: usize) -> bool {
    true
}

#[rustfmt::skip]
const SPECS: &[Spec] = &[
    Spec { kind: SecretKind::PrivateKey, group: 0, validate: private_key_body,
        gate: Gate::Anchors(&[&["-----BEGIN"]]),
        pattern: r"-----BEGIN[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----" },
    Spec { kind: SecretKind::Jwt, group: 0, validate: jwt_header,
        gate: Gate::Anchors(&[&["eyJ"]]),
        pattern: r"\beyJ[A-Za-z0-9_-]{10,}={0,2}\.eyJ[A-Za-z0-9_-]{4,}={0,2}(?:\.[A-Za-z0-9_-]*)?" },
    Spec { kind: SecretKind::AwsAccessKey, group: 1, validate: aws_key_id,
        gate: Gate::Runs { class: aws_id_class, seed: aws_id_seed, pad: 1,
            trigger: Trigger::MinLen(20) },
        pattern: r"(?:^|[^A-Za-z0-9/+])((?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA|A3T[A-Z0-9])[A-Z0-9]{16})(?:[^A-Za-z0-9/+]|$)" },
    Spec { kind: SecretKind::AwsSecretKey, group: 1, validate: not_placeholder_token,
        gate: Gate::Anchors(&[&["aws"]]),
        pattern: r#"(?i)aws[\w.-]{0,30}?(?:secret|access)[\w.-]{0,20}["'\]]?\s*(?::=|=>|=|:)\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)"# },
    Spec { kind: SecretKind::GithubToken, group: 0, validate: not_placeholder_token,
        gate: Gate::Anchors(&[&["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]]),
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{70,255})\b" },
    Spec { kind: SecretKind::GitlabToken, group: 1, validate: not_placeholder_token,
        gate: Gate::Anchors(&[&["glpat-", "gldt-", "glptt-", "glrt-", "glcbt-", "glimt-", "glagent-", "gloas-", "glft-", "glffct-", "glsoat-", "GR1348941"]]),
        pattern: r"(?:^|[^A-Za-z0-9_-])((?:glpat-[A-Za-z0-9_-]{20}|glpat-[A-Za-z0-9_-]{27,300}\.[0-9a-z]{2}[0-9a-z]{7}|gldt-[A-Za-z0-9_-]{20}|glptt-[A-Za-z0-9_-]{40}|glrt-[A-Za-z0-9_-]{20}|glrt-t\d_[A-Za-z0-9_-]{27,300}\.[0-9a-z]{2}[0-9a-z]{7}|glcbt-(?:[0-9a-fA-F]{1,5}_)?[A-Za-z0-9_-]{20}|glimt-[A-Za-z0-9_-]{25}|glagent-[A-Za-z0-9_-]{50,1024}|gloas-[A-Za-z0-9_-]{64}|glft-[A-Za-z0-9_-]{20}|glffct-[A-Za-z0-9_-]{20}|glsoat-[A-Za-z0-9_-]{19,}[A-Za-z0-9-]|GR1348941[A-Za-z0-9_-]{19,}[A-Za-z0-9-]))(?:[^A-Za-z0-9_-]|$)" },
    Spec { kind: SecretKind::SlackWebhook, group: 0, validate: always,
        gate: Gate::Anchors(&[&["://hooks.slack.com/"]]),
        pattern: r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}" },
    Spec { kind: SecretKind::SlackToken, group: 0, validate: not_placeholder_token,
        gate: Gate::Anchors(&[&["xox", "xapp-"]]),
        pattern: r"\b(?:xox[abposre]-(?:\d-)?\d{5,}(?:-\d+)*-[A-Za-z0-9]{10,}|xoxe\.xox[bp]-\d-[A-Za-z0-9]{100,}|xoxe-\d-[A-Za-z0-9]{100,}|xapp-\d-[A-Z0-9]{9,}-\d{6,}-[a-z0-9]{32,})\b" },
    Spec { kind: SecretKind::StripeKey, group: 0, validate: not_placeholder_token,
        gate: Gate::Anchors(&[&["sk_live_", "sk_test_", "sk_prod_", "rk_live_", "rk_test_", "rk_prod_"]]),
        pattern: r"\b(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,247}\b" },
    Spec { kind: SecretKind::AnthropicKey, group: 0, validate: anthropic_key,
        gate: Gate::Anchors(&[&["sk-ant-"]]),
        pattern: r"\bsk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_-]{80,}" },
    Spec { kind: SecretKind::OpenaiKey, group: 0, validate: not_placeholder_token,
        gate: Gate::Anchors(&[&["sk-"]]),
        pattern: r"\bsk-(?:(?:proj|svcacct|admin|None)-)?[A-Za-z0-9_-]{10,}T3BlbkFJ[A-Za-z0-9_-]{10,}|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{80,}" },
    // The exact length: a token is 32 random bytes, base64url without padding.
    Spec { kind: SecretKind::SealgateToken, group: 1, validate: not_placeholder_token,
        gate: Gate::Anchors(&[&["sgk_"]]),
        pattern: r"(?:^|[^A-Za-z0-9_-])(sgk_[A-Za-z0-9_-]{43})(?:[^A-Za-z0-9_-]|$)" },
    Spec { kind: SecretKind::UrlPassword, group: 1, validate: url_password,
        gate: Gate::Anchors(&[&["://"], &["@"]]),
        pattern: r#"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@'"<>{}]{1,64}:([^\s/@'"<>]{1,128})@[A-Za-z0-9.-]+"# },
    Spec { kind: SecretKind::UrlPassword, group: 1, validate: curl_password,
        gate: Gate::Anchors(&[&["curl"], &["-u"]]),
        pattern: r#"\bcurl\b(?s:.){0,300}?\s(?:-u|--user)\s+["']?[^\s:"']{0,64}["']?:["']?([^\s"']{1,128})"# },
    // `curl -u TOKEN:` (empty password): the user part is the credential,
    // as with Stripe, Mailgun or Elastic API keys.
    Spec { kind: SecretKind::UrlPassword, group: 1, validate: curl_token_user,
        gate: Gate::Anchors(&[&["curl"], &["-u"]]),
        pattern: r#"\bcurl\b(?s:.){0,300}?\s(?:-u|--user)\s+["']?([^\s:"']{6,128}):["']?(?:\s|$)"# },
    Spec { kind: SecretKind::Password, group: 1, validate: assigned_value,
        gate: Gate::Anchors(&[CREDENTIAL_WORDS, QUOTES]),
        pattern: r#"(?i)(?:pass|pwd|secret|api_?key|apikey|access_?key|private_?key|token|credential)[a-z0-9_]{0,30}(?:\[\d*\])?["'`\]]?[ \t]*(?::=|=>|!==?|===?|=|:|[ \t])[ \t]*@?["'`]([^"'`\n]{1,200})["'`]"# },
    // A credential name and its value as two quoted arguments:
    // `getenv("API_TOKEN", "…")`, `config.get('password', '…')`.
    Spec { kind: SecretKind::Password, group: 1, validate: argument_value,
        gate: Gate::Anchors(&[CREDENTIAL_WORDS, QUOTES]),
        pattern: r#"(?i)["'`][a-z0-9_.-]{0,30}(?:pass|pwd|secret|api_?key|apikey|access_?key|private_?key|token|credential)[a-z0-9_.-]{0,30}["'`][ \t]*,[ \t]*["'`]([^"'`\n]{6,200})["'`]"# },
    Spec { kind: SecretKind::Password, group: 1, validate: compared_value,
        gate: Gate::Anchors(&[&["!=", "=="], QUOTES]),
        pattern: r#"["'`]([^"'`\n]{1,200})["'`][ \t]*(?:!==?|===?)[ \t]*[A-Za-z_][A-Za-z0-9_]{0,40}"# },
    Spec { kind: SecretKind::Password, group: 1, validate: assigned_bare_value,
        gate: Gate::Anchors(&[BARE_CREDENTIAL_WORDS]),
        pattern: r#"(?i)(?:pass|pwd|secret|api_?key|apikey|access_?key|private_?key|token|credential)[a-z0-9_]{0,30}(?:\[\d*\])?["'\]]?[ \t]*(?::=|=|:)[ \t]*((?:[^\s"'`,;]|,[^\s\w"'`,;]){6,200})"# },
    Spec { kind: SecretKind::Iban, group: 0, validate: iban,
        gate: Gate::Runs { class: iban_class, seed: iban_seed, pad: 0,
            trigger: Trigger::Digit },
        pattern: r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,4})?\b" },
    Spec { kind: SecretKind::CreditCard, group: 0, validate: credit_card,
        gate: Gate::Runs { class: card_class, seed: card_seed, pad: 0,
            trigger: Trigger::Digit },
        pattern: r"\b\d(?:[ -]?\d){12,18}\b" },
    Spec { kind: SecretKind::Email, group: 0, validate: always,
        gate: Gate::Runs { class: email_class, seed: email_seed, pad: 0,
            trigger: Trigger::Byte(b'@') },
        pattern: r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{2,59})\b" },
    Spec { kind: SecretKind::UsSsn, group: 0, validate: us_ssn,
        gate: Gate::Runs { class: ssn_class, seed: ssn_seed, pad: 0,
            trigger: Trigger::Digit },
        pattern: r"\b\d{3}[- .]?\d{2}[- .]?\d{4}\b" },
    Spec { kind: SecretKind::IpAddress, group: 0, validate: ipv4,
        gate: Gate::Runs { class: ipv4_class, seed: ipv4_seed, pad: 0,
            trigger: Trigger::Digit },
        pattern: r"\b(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?\b" },
    Spec { kind: SecretKind::IpAddress, group: 0, validate: ipv6,
        gate: Gate::Runs { class: ipv6_class, seed: ipv6_seed, pad: 0,
            trigger: Trigger::Byte(b':') },
        // The dotted tail first: `…:129.144.52.38` is one address, not
        // `…:129` and a rest; a prefix length must end at a word boundary.
        pattern: r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?:%[A-Za-z0-9]+)?(?:/\d{1,3}\b)?" },
    Spec { kind: SecretKind::PhoneNumber, group: 0, validate: phone,
        gate: Gate::Runs { class: phone_class, seed: phone_seed, pad: 0,
            trigger: Trigger::Digit },
        pattern: r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?|\b\d{1,4}[ .-])?(?:\d[ .-]?){5,11}\d\b|\b\d{10,11}\b" },
    Spec { kind: SecretKind::HighEntropyToken, group: 0, validate: high_entropy,
        gate: Gate::Runs { class: token_class, seed: token_seed, pad: 0,
            trigger: Trigger::MinLen(24) },
        pattern: r"[A-Za-z0-9+/_-]{24,512}={0,2}" },
];

// ---- validators ---------------------------------------------------------

fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let (mut lo, mut hi) = (usize::MAX, 0);
    for b in s.bytes() {
        let b = usize::from(b);
        counts[b] += 1;
        lo = lo.min(b);
        hi = hi.max(b);
    }
    let n = s.len() as f64;
    // Only the byte values present, in ascending order (as over all 256).
    counts
        .get(lo..=hi)
        .unwrap_or_default()
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// True for obvious placeholders: mostly `x`/`X`/`*`/`#`/`0`, template
/// syntax, or fewer than four distinct alphanumerics.
pub(crate) fn is_placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c| matches!(c, '"' | '\'' | '`'));
    if v.is_empty() {
        return true;
    }
    let wrapped = |open: &str, close: &str| v.starts_with(open) && v.ends_with(close);
    let shell_var = v.starts_with('$')
        && v[1..]
            .trim_start_matches(['{', '('])
            .trim_end_matches(['}', ')'])
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ' ');
    if shell_var
        || wrapped("${", "}")
        || wrapped("{{", "}}")
        || wrapped("<", ">")
        || wrapped("[", "]")
        || wrapped("%", "%")
        || wrapped("{", "}")
    {
        return true;
    }
    if has_sequence_run(v, 6) {
        return true;
    }
    let fill = v
        .chars()
        .filter(|c| matches!(c, 'x' | 'X' | '*' | '#' | '.' | '•'))
        .count();
    let alnum: Vec<char> = v.chars().filter(|c| c.is_alphanumeric()).collect();
    if fill * 2 >= v.chars().count() {
        return true;
    }
    // Symbols count as variety too: `A,.:-¨@*¿?!` is a password.
    let mut distinct: Vec<char> = v.chars().filter(|c| !c.is_whitespace()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() < 3 || alnum.is_empty()
}

/// Whether `v` holds `len` or more consecutive ascending characters
/// (`abcdef`, `123456`), a hallmark of hand-written sample values.
fn has_sequence_run(v: &str, len: usize) -> bool {
    let mut run = 1;
    for w in v.as_bytes().windows(2) {
        if w[0].is_ascii_alphanumeric() && w[1] == w[0].wrapping_add(1) {
            run += 1;
            if run >= len {
                return true;
            }
        } else {
            run = 1;
        }
    }
    false
}

/// The identifier just before an assignment or comparison whose value
/// starts at `pos` (skipping quotes, spaces and operators), e.g.
/// `db_password` in `db_password = "…"`.
fn key_before(text: &str, pos: usize) -> &str {
    let operators = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '"' | '\'' | '`' | '@' | ':' | '=' | '>' | '!' | ']' | '['
            )
    };
    let mut trimmed = text[..pos].trim_end_matches(operators);
    // A C array size: `secret[25] = "…"`.
    if let Some(open) = trimmed.rfind('[') {
        if open + 1 < trimmed.len() && trimmed[open + 1..].bytes().all(|b| b.is_ascii_digit()) {
            trimmed = trimmed[..open].trim_end_matches(operators);
        }
    }
    let start = trimmed
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '-' || *c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &trimmed[start..]
}

/// The identifier just after a comparison operator starting at `pos`.
fn key_after(text: &str, pos: usize) -> &str {
    let tail = text[pos..].trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '=' | '!')
    });
    let end = tail
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(tail.len());
    &tail[..end]
}

fn not_placeholder_token(text: &str, start: usize, end: usize) -> bool {
    let token = &text[start..end];
    // Judge the part after the vendor prefix.
    let body = token.find(['_', '-']).map_or(token, |i| &token[i + 1..]);
    !is_placeholder(body) && (body.len() < 16 || shannon_entropy(body) >= 2.5)
}

fn aws_key_id(text: &str, start: usize, end: usize) -> bool {
    let body = &text[start + 4..end];
    // AWS documentation's example ids end in EXAMPLE.
    !body.ends_with("EXAMPLE") && !body.chars().all(|c| c == 'X' || c == '0')
}

fn private_key_body(text: &str, _start: usize, end: usize) -> bool {
    let rest = &text[end..];
    let window = &rest[..floor_boundary(rest, 8192)];
    match window.find("-----END") {
        // A complete block must carry some key material.
        Some(i) => {
            window[..i]
                .bytes()
                .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
                .count()
                >= 16
        }
        // A header without an end marker: a truncated key, report it.
        None => true,
    }
}

fn floor_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn jwt_header(text: &str, start: usize, end: usize) -> bool {
    let token = &text[start..end];
    let header = token.split('.').next().unwrap_or("").trim_end_matches('=');
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    let trimmed = bytes.trim_ascii();
    if serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(trimmed).is_ok() {
        return true;
    }
    // Tolerate a corrupted value but insist on a JOSE header's shape.
    let jose: [&[u8]; 4] = [b"\"alg\"", b"\"typ\"", b"\"kid\"", b"\"enc\""];
    trimmed.starts_with(b"{\"")
        && trimmed.ends_with(b"}")
        && jose
            .iter()
            .any(|k| trimmed.windows(k.len()).any(|w| w == *k))
}

/// A value inside `{…}`, `<…>` or `[…]`: the inside, and whether it is a
/// name (letters, `_`, `-`, `.`, spaces) rather than a value, as in the
/// placeholders `{password}`, `<API token>`, `[PASSWORD]`.
fn unwrap_template(v: &str) -> (&str, bool) {
    let inner = [('{', '}'), ('<', '>'), ('[', ']')]
        .iter()
        .find_map(|(open, close)| v.strip_prefix(*open)?.strip_suffix(*close));
    match inner {
        Some(inner) => {
            let inner = inner.trim_matches(['{', '}', ' ']);
            let name = inner
                .chars()
                .all(|c| c.is_alphabetic() || matches!(c, '_' | '-' | '.' | ' ' | ':' | '$'));
            (inner, name)
        }
        None => (v, false),
    }
}

fn url_password(text: &str, start: usize, end: usize) -> bool {
    let pw = &text[start..end];
    if pw.starts_with('$') || pw.starts_with('%') {
        // `$PASSWORD`, `${…}`, `$(…)`, `%PASSWORD%`: a reference.
        return false;
    }
    if pw.starts_with(['{', '<', '[']) {
        // A template, unless what is inside is a value: `{ZqL5kVrX1n8tA2}`.
        let (inner, name) = unwrap_template(pw);
        return !name && inner != pw && !is_placeholder(inner) && shannon_entropy(inner) >= 2.5;
    }
    true
}

fn curl_password(text: &str, start: usize, end: usize) -> bool {
    if !url_password(text, start, end) {
        return false;
    }
    // `{ZqL5kVrX1n8tA2}`: judge what is inside (a name inside was refused).
    let (pw, _) = unwrap_template(&text[start..end]);
    let bare = pw.trim_end_matches(['>', '"', '\'', ']']);
    !NON_SECRET_VALUES.contains(&bare.to_ascii_lowercase().as_str())
        && pw.len() >= 6
        && !pw.contains("${")
        && !pw.contains("$(")
        && !is_placeholder(pw)
        && shannon_entropy(pw) >= 2.5
}

/// `curl -u TOKEN:`: the user part, when it looks like a credential rather
/// than a user name (digits, mixed case or symbols, and entropy).
fn curl_token_user(text: &str, start: usize, end: usize) -> bool {
    curl_password(text, start, end) && looks_like_credential(&text[start..end])
}

/// Anthropic keys. The exact format (`sk-ant-api03-` or `sk-ant-admin01-`,
/// 93 characters, then `AA`) is evidence enough that hand-made look of a
/// sample (`abc123…`) does not make it a placeholder; only fills of one
/// character are refused. Other lengths are judged like vendor tokens.
fn anthropic_key(text: &str, start: usize, end: usize) -> bool {
    let token = &text[start..end];
    let exact = ["sk-ant-api03-", "sk-ant-admin01-"].iter().any(|prefix| {
        token.strip_prefix(prefix).is_some_and(|body| {
            body.len() == 95
                && body.ends_with("AA")
                && body
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
    });
    if exact {
        let body = &token[token.len() - 95..token.len() - 2];
        let mut distinct: Vec<u8> = body.bytes().filter(u8::is_ascii_alphanumeric).collect();
        distinct.sort_unstable();
        distinct.dedup();
        return distinct.len() >= 8;
    }
    not_placeholder_token(text, start, end)
}

const NON_SECRET_VALUES: &[&str] = &[
    "null",
    "none",
    "nil",
    "true",
    "false",
    "undefined",
    "password",
    "secret",
    "changeme",
    "required",
    "optional",
    "string",
    "redacted",
    "hidden",
    "example",
    "your_password",
    "yourpassword",
    "placeholder",
    "todo",
    "tbd",
    "empty",
];

/// Whether the quoted value at `start..end` is closed by the quote that
/// opened it (`"…'` is not a string literal).
fn same_quotes(text: &str, start: usize, end: usize) -> bool {
    let bytes = text.as_bytes();
    match (start.checked_sub(1).map(|i| bytes[i]), bytes.get(end)) {
        (Some(open), Some(&close)) => !matches!(open, b'"' | b'\'' | b'`') || open == close,
        _ => true,
    }
}

fn assigned_value(text: &str, start: usize, end: usize) -> bool {
    is_credential_key(key_before(text, start))
        && same_quotes(text, start, end)
        && !c_char_literal(text, start)
        && plausible_value(&text[start..end])
}

/// Single quotes that make a character, not a string: after a C-style
/// array declaration (`name[] = '…'`, `name[25] = '…'`), or after `@`
/// (the C# and Objective-C string prefix takes double quotes only).
fn c_char_literal(text: &str, start: usize) -> bool {
    let before = &text[..start];
    before.ends_with("@'")
        || (before.ends_with('\'')
            && before[..before.len() - 1]
                .trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '=' | ':'))
                .ends_with(']'))
}

fn compared_value(text: &str, start: usize, end: usize) -> bool {
    is_credential_key(key_after(text, end + 1))
        && same_quotes(text, start, end)
        && plausible_value(&text[start..end])
}

/// `("api_token", "…")`: the quoted name before the comma must be a
/// credential name, and the value must look like a credential.
fn argument_value(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].trim_end_matches(['"', '\'', '`']);
    let before = before
        .trim_end()
        .strip_suffix(',')
        .unwrap_or(before)
        .trim_end();
    let key = before.trim_end_matches(['"', '\'', '`']);
    let key_start = key
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let v = &text[start..end];
    is_credential_key(&key[key_start..])
        && same_quotes(text, start, end)
        && plausible_value(v)
        && looks_like_credential(v)
}

/// Words that mark a value as a stand-in (`somefakekey`, `dummy-token`,
/// `example_password`): checked as parts of assigned values.
const STAND_IN_MARKERS: &[&str] = &[
    "fake",
    "dummy",
    "example",
    "sample",
    "placeholder",
    "changeme",
];

fn plausible_value(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    !is_placeholder(v)
        && v.chars().any(char::is_alphanumeric)
        && !NON_SECRET_VALUES.contains(&lower.as_str())
        && !STAND_IN_MARKERS.iter().any(|m| lower.contains(m))
        && !names_a_credential(v)
        && !PUBLISHED_KEYS.contains(&v)
        && !v.chars().all(|c| c.is_ascii_digit())
}

/// Words that name a credential rather than being one.
const CREDENTIAL_NOUNS: &[&str] = &[
    "key",
    "apikey",
    "password",
    "passwd",
    "pass",
    "pwd",
    "secret",
    "token",
    "credential",
    "credentials",
];

/// A placeholder phrase that tells where a credential goes instead of being one:
/// `your_api_key`, `real_key`, `insert-token-here`, `enter_password` (lower-case
/// words joined by `_` or `-`, opening with a placeholder word and ending, before an
/// optional `here`, in a credential noun). The same idea as `your_password` in
/// [`NON_SECRET_VALUES`]; a phrase that does not open so (`super-secret-key`,
/// `admin-pass`) may be a weak real secret and is still reported.
fn names_a_credential(v: &str) -> bool {
    let words: Vec<&str> = v.split(['_', '-']).collect();
    let words = match words.as_slice() {
        [rest @ .., "here"] => rest,
        all => all,
    };
    words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && matches!(
            words[0],
            "your" | "real" | "actual" | "insert" | "enter" | "replace" | "put"
        )
        && CREDENTIAL_NOUNS.contains(&words[words.len() - 1])
}

/// Keys that are public on purpose and appear in countless public files, so
/// reporting them only trains people to ignore the report: the search-only
/// key of the npm registry's Algolia index, which yarn and many docs sites
/// embed (gitleaks carries it as a stop word, yarnpkg/berry#6201).
const PUBLISHED_KEYS: &[&str] = &["6fe4476ee5a1832882e326b506d14126"];

/// A bare value that looks like a credential rather than a word, path or
/// call: letters with digits, mixed case or symbols, and some entropy.
fn looks_like_credential(v: &str) -> bool {
    let has_digit = v.chars().any(|c| c.is_ascii_digit());
    let has_alpha = v.chars().any(|c| c.is_alphabetic());
    let mixed_case = v.chars().any(char::is_uppercase) && v.chars().any(char::is_lowercase);
    let symbol = v.chars().any(|c| "!@#%^&*+=?~".contains(c));
    let call = v.find('(').is_some_and(|i| {
        i > 0
            && v[..i]
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
    });
    let looks_code =
        call || v.contains("::") || v.contains("://") || v.ends_with('.') || v.starts_with('.');
    !looks_code
        && !v.contains(' ')
        && has_alpha
        && (has_digit || mixed_case || symbol)
        && shannon_entropy(v) >= 2.8
}

fn assigned_bare_value(text: &str, start: usize, end: usize) -> bool {
    // An unquoted right-hand side ending a statement (`passwd = expr;`)
    // is code, not a literal.
    if text[end..].starts_with(';') {
        return false;
    }
    assigned_value(text, start, end) && looks_like_credential(&text[start..end])
}

fn high_entropy(text: &str, start: usize, end: usize) -> bool {
    let t = &text[start..end];
    // Not part of a longer identifier, URL path or file name.
    let before = text[..start].chars().next_back();
    if matches!(before, Some(c) if c.is_alphanumeric() || c == '.' || c == '\\' || c == '%') {
        return false;
    }
    // Byte classes first: one pass, and they turn most candidates down.
    let (mut upper, mut lower, mut digits, mut joiners) = (0usize, 0usize, 0usize, 0usize);
    let (mut lower_run, mut longest_lower_run) = (0usize, 0usize);
    for b in t.bytes() {
        if b.is_ascii_lowercase() {
            lower += 1;
            lower_run += 1;
            longest_lower_run = longest_lower_run.max(lower_run);
            continue;
        }
        lower_run = 0;
        if b.is_ascii_uppercase() {
            upper += 1;
        } else if b.is_ascii_digit() {
            digits += 1;
        } else if b == b'-' || b == b'_' {
            joiners += 1;
        }
    }
    if upper < 2 || lower < 2 || digits < 2 {
        return false;
    }
    // Mostly-letter runs are identifiers or words glued together.
    if joiners * 6 > t.len() || longest_lower_run >= 8 {
        return false;
    }
    let wordy = t
        .as_bytes()
        .split(|b| *b == b'_' || *b == b'-')
        .filter(|seg| seg.len() >= 3 && seg.iter().all(u8::is_ascii_alphabetic))
        .count();
    if wordy >= 2 {
        return false;
    }
    let key = key_before(text, start);
    let bytes = key.as_bytes();
    let public = bytes
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"pub"))
        || bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"public"))
        || is_public_by_design(&snake_lower(key));
    !public && shannon_entropy(t) >= 4.2
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn digits_of(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

fn uniform_separators(s: &str) -> bool {
    let seps: Vec<char> = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    seps.windows(2).all(|w| w[0] == w[1])
}

fn credit_card(text: &str, start: usize, end: usize) -> bool {
    let s = &text[start..end];
    let d = digits_of(s);
    if !(13..=19).contains(&d.len()) || !uniform_separators(s) || !luhn(&d) {
        return false;
    }
    card_issuer_length(&d)
}

/// Whether the number's length is one its issuer uses (ISO/IEC 7812 issuer
/// ranges as published by the networks): Visa 13/16/19, Mastercard 16,
/// Amex 15, Diners 14–19, Discover/UnionPay/JCB/Mir 16–19, Maestro 12–19,
/// UATP 15, RuPay and Troy 16.
fn card_issuer_length(d: &[u8]) -> bool {
    let prefix = |n: usize| d[..n].iter().fold(0u32, |a, x| a * 10 + u32::from(*x));
    let (p2, p3, p4, p6) = (prefix(2), prefix(3), prefix(4), prefix(6));
    let n = d.len();
    let lengths: &[std::ops::RangeInclusive<usize>] = match d[0] {
        4 => &[13..=13, 16..=16, 19..=19],
        1 => &[15..=15],
        _ if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => &[16..=16],
        _ if (2200..=2204).contains(&p4) => &[16..=19],
        _ if p2 == 34 || p2 == 37 => &[15..=15],
        _ if (300..=305).contains(&p3) || p3 == 309 || matches!(p2, 36 | 38 | 39) => &[14..=19],
        _ if p4 == 6011
            || (644..=649).contains(&p3)
            || p2 == 65
            || (622_126..=622_925).contains(&p6)
            || p2 == 62
            || (3528..=3589).contains(&p4) =>
        {
            &[16..=19]
        }
        _ if p2 == 50 || (56..=69).contains(&p2) => &[12..=19],
        _ if p2 == 60 || p2 == 81 || p2 == 82 || p3 == 508 || p4 == 9792 => &[16..=16],
        _ => &[],
    };
    lengths.iter().any(|r| r.contains(&n))
}

fn us_ssn(text: &str, start: usize, end: usize) -> bool {
    let s = &text[start..end];
    if !uniform_separators(s) {
        return false;
    }
    let d = digits_of(s);
    if d.len() != 9 {
        return false;
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial: u32 = d[5..].iter().fold(0, |a, x| a * 10 + u32::from(*x));
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return false;
    }
    // A run of one repeated digit, the canonical sequence, or a number the
    // SSA voided after it was printed as a sample (078-05-1120 in the
    // Woolworth wallet insert, 219-09-9999 in an SSA leaflet).
    if d.iter().all(|x| *x == d[0])
        || d == [1, 2, 3, 4, 5, 6, 7, 8, 9]
        || d == [0, 7, 8, 0, 5, 1, 1, 2, 0]
        || d == [2, 1, 9, 0, 9, 9, 9, 9, 9]
    {
        return false;
    }
    // Unseparated nine-digit numbers are too common to report bare; keep
    // them only when the text around says SSN.
    if !s.contains(['-', ' ', '.']) {
        let ctx_start = floor_boundary(text, start.saturating_sub(40));
        let ctx = text[ctx_start..start].to_ascii_lowercase();
        return ctx.contains("ssn")
            || ctx.contains("social security")
            || start == 0 && end == text.len();
    }
    true
}

fn ipv4_parts_ok(s: &str) -> bool {
    let addr = s.split('/').next().unwrap_or(s);
    let parts: Vec<&str> = addr.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|v| v <= 255)
        })
}

fn ipv4(text: &str, start: usize, end: usize) -> bool {
    let s = &text[start..end];
    if !ipv4_parts_ok(s) {
        return false;
    }
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let after2 = text[end..].chars().nth(1);
    // Not a piece of a longer dotted sequence (version numbers, OIDs) and
    // not glued to letters.
    // A colon before is fine (`ip:10.0.0.1`); an IPv6 address holding this
    // one is longer and wins the overlap.
    let glued_before = matches!(before, Some(c) if c.is_alphanumeric() || c == '.');
    let glued_after = matches!(after, Some(c) if c.is_alphanumeric())
        || (after == Some('.') && matches!(after2, Some(c) if c.is_ascii_digit()));
    !glued_before && !glued_after
}

fn ipv6(text: &str, start: usize, end: usize) -> bool {
    let s = &text[start..end];
    let before = text[..start].chars().next_back();
    if matches!(before, Some(c) if c.is_alphanumeric() || c == ':') {
        return false;
    }
    if matches!(text[end..].chars().next(), Some(c) if c.is_alphanumeric()) {
        return false;
    }
    // `::ffff:192.168.1` stops before an incomplete dotted tail.
    let tail = &text.as_bytes()[end..];
    if tail.first() == Some(&b'.') && tail.get(1).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    let addr = s.split('/').next().unwrap_or(s);
    let addr = addr.split('%').next().unwrap_or(addr);
    // A bare MAC address or time stamp is not an IPv6 address.
    if !addr.contains("::") && addr.split(':').count() != 8 && !addr.contains('.') {
        return false;
    }
    addr.parse::<Ipv6Addr>().is_ok()
}

fn phone(text: &str, start: usize, end: usize) -> bool {
    let s = &text[start..end];
    let d = digits_of(s);
    let international = s.starts_with('+');
    if international {
        if !(8..=15).contains(&d.len()) {
            return false;
        }
    } else if !(9..=11).contains(&d.len()) {
        return false;
    }
    let before = text[..start].chars().next_back();
    if matches!(before, Some(c) if c.is_alphanumeric() || c == '.' || c == '/' || c == '-' || c == ':')
    {
        return false;
    }
    if matches!(text[end..].chars().next(), Some(c) if c == '.' || c == '/' || c == '-' || c == ':')
        && text[end + 1..].starts_with(|c: char| c.is_ascii_digit())
    {
        return false;
    }
    let separated = s.contains([' ', '-', '.', '(']);
    if !international && !separated {
        // A bare run of digits: only mobile-style 11-digit numbers starting
        // with 1, or 10-digit numbers next to the word phone/tel/call.
        let ctx_start = floor_boundary(text, start.saturating_sub(30));
        let ctx = text[ctx_start..start].to_ascii_lowercase();
        let phone_ctx = [
            "phone", "tel", "call", "mobile", "cell", "number", "whatsapp", "sms",
        ]
        .iter()
        .any(|w| ctx.contains(w));
        return phone_ctx;
    }
    if !international {
        // NANP: (NXX) NXX-XXXX, or a trunk-prefixed local form 0X-XXXXXXX.
        let nanp = d.len() == 10 && d[0] >= 2 && d[3] >= 2;
        let nanp1 = d.len() == 11 && d[0] == 1 && d[1] >= 2;
        let trunk = d[0] == 0 && s.contains([' ', '-', '(']);
        if !(nanp || nanp1 || trunk) {
            return false;
        }
        // Dates (2024-01-15) and dotted versions are not phones.
        if s.contains('.') && !s.contains(['(', ' ']) && s.matches('.').count() != 2 {
            return false;
        }
    }
    true
}

#[rustfmt::skip]
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// Validates an IBAN candidate: known country, exact length, mod-97 == 1.
pub(crate) fn iban_valid(candidate: &str) -> bool {
    let compact: Vec<u8> = candidate
        .bytes()
        .filter(|b| *b != b' ' && *b != b'-')
        .collect();
    if compact.len() < 15 || compact.iter().any(|b| !b.is_ascii_alphanumeric()) {
        return false;
    }
    let country = std::str::from_utf8(&compact[..2]).unwrap_or("");
    let Some((_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
        return false;
    };
    if compact.len() != *len {
        return false;
    }
    let rearranged = compact[4..].iter().chain(compact[..4].iter());
    let mut rem: u32 = 0;
    for b in rearranged {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b.to_ascii_uppercase() - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn iban(text: &str, start: usize, end: usize) -> bool {
    let s = &text[start..end];
    uniform_separators_alnum(s) && iban_valid(s)
}

fn uniform_separators_alnum(s: &str) -> bool {
    let seps: Vec<char> = s.chars().filter(|c| !c.is_ascii_alphanumeric()).collect();
    seps.windows(2).all(|w| w[0] == w[1])
}

// ---- scanner ------------------------------------------------------------

/// One compiled detector and its gate.
struct Detector {
    kind: SecretKind,
    regex: meta::Regex,
    /// Capture group holding the secret (0 = whole match, at most 1).
    group: usize,
    validate: Validator,
    check: Check,
}

/// A detector's [`Gate`], compiled.
enum Check {
    /// Per group, a bit mask of anchor literal ids; each group needs one.
    Anchors(Vec<u128>),
    /// As [`Gate::Runs`], with the class as a table.
    Runs {
        class: Box<[bool; 256]>,
        seed: fn(&[u8]) -> bool,
        pad: usize,
        trigger: Trigger,
    },
}

type CacheFn = Box<dyn Fn() -> Vec<meta::Cache> + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// The compiled detector table.
pub(crate) struct SecretScanner {
    detectors: Vec<Detector>,
    /// Anchor literals of two or more bytes (lowercase), leftmost-longest,
    /// searched in the lowercased text with the SIMD prefilter.
    anchors: AhoCorasick,
    /// Per `anchors` pattern: the literal ids of it and of every literal
    /// that is a prefix of it (they occur where it occurs).
    anchor_masks: Vec<u128>,
    /// One-byte anchor literals (quotes, `@`…) and their ids: only their
    /// presence is needed, which a byte search ends at the first one.
    single: Vec<(u8, usize)>,
    /// Two-byte anchor literals (`==`, `!=`, `-u`), found by their first
    /// byte: kept out of `anchors`, whose SIMD prefilter then works on
    /// three-byte fingerprints and stops far less often in prose.
    pairs: Vec<([u8; 2], usize)>,
    /// Detectors gated by runs around digits; they share one digit search.
    digit_runs: Vec<usize>,
    /// Regex caches, one per detector, per concurrent caller.
    caches: Pool<Vec<meta::Cache>, CacheFn>,
}

impl std::fmt::Debug for SecretScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretScanner")
            .field("detectors", &self.detectors.len())
            .finish_non_exhaustive()
    }
}

/// The maximal run of `class` bytes around `at` (which is in the class).
fn run_around(bytes: &[u8], at: usize, class: &[bool; 256]) -> (usize, usize) {
    let mut start = at;
    while start > 0 && class[usize::from(bytes[start - 1])] {
        start -= 1;
    }
    let mut end = at + 1;
    while end < bytes.len() && class[usize::from(bytes[end])] {
        end += 1;
    }
    (start, end)
}

impl SecretScanner {
    pub(crate) fn new(enabled: &[SecretKind]) -> Result<Self, ScreenError> {
        let specs: Vec<&Spec> = SPECS.iter().filter(|s| enabled.contains(&s.kind)).collect();
        let mut literals: Vec<String> = Vec::new();
        let mut detectors = Vec::with_capacity(specs.len());
        for s in specs {
            let check = match s.gate {
                Gate::Anchors(groups) => {
                    let mut masks = Vec::with_capacity(groups.len());
                    for group in groups {
                        let mut mask = 0u128;
                        for lit in *group {
                            let lit = lit.to_ascii_lowercase();
                            let id = match literals.iter().position(|l| *l == lit) {
                                Some(id) => id,
                                None => {
                                    literals.push(lit);
                                    literals.len() - 1
                                }
                            };
                            if id >= 128 {
                                return Err(ScreenError::Pattern("too many anchors".into()));
                            }
                            mask |= 1u128 << id;
                        }
                        masks.push(mask);
                    }
                    Check::Anchors(masks)
                }
                Gate::Runs {
                    class,
                    seed,
                    pad,
                    trigger,
                } => {
                    let mut table = Box::new([false; 256]);
                    for (b, slot) in (0u8..=255).zip(table.iter_mut()) {
                        *slot = class(b);
                    }
                    let trigger_in_class = match trigger {
                        Trigger::Byte(t) => class(t),
                        Trigger::Digit => (b'0'..=b'9').all(class),
                        Trigger::MinLen(n) => n > 0,
                    };
                    if !trigger_in_class {
                        return Err(ScreenError::Pattern(format!(
                            "{}: run trigger outside its class",
                            s.kind
                        )));
                    }
                    Check::Runs {
                        class: table,
                        seed,
                        pad,
                        trigger,
                    }
                }
            };
            if s.group > 1 {
                return Err(ScreenError::Pattern(format!(
                    "{}: secret in capture group {} (at most 1)",
                    s.kind, s.group
                )));
            }
            detectors.push(Detector {
                kind: s.kind,
                // ASCII semantics for \b, \d, \s and classes: every
                // detector targets ASCII tokens, and Unicode word
                // boundaries would force the slow engines on non-ASCII text.
                regex: meta::Regex::builder()
                    .syntax(syntax::Config::new().unicode(false).utf8(false))
                    .configure(
                        meta::Config::new()
                            .utf8_empty(false)
                            .nfa_size_limit(Some(10 << 20))
                            .hybrid_cache_capacity(2 << 20),
                    )
                    .build(s.pattern)
                    .map_err(|e| ScreenError::Pattern(e.to_string()))?,
                group: s.group,
                validate: s.validate,
                check,
            });
        }
        let mut single = Vec::new();
        let mut pairs = Vec::new();
        let mut multi: Vec<&str> = Vec::new();
        let mut multi_ids = Vec::new();
        for (id, lit) in literals.iter().enumerate() {
            match lit.as_bytes() {
                [b] => single.push((*b, id)),
                [a, b] => pairs.push(([*a, *b], id)),
                _ => {
                    multi.push(lit);
                    multi_ids.push(id);
                }
            }
        }
        let anchor_masks = multi
            .iter()
            .map(|lit| {
                multi
                    .iter()
                    .zip(&multi_ids)
                    .filter(|(other, _)| lit.starts_with(**other))
                    .fold(0u128, |mask, (_, id)| mask | 1u128 << id)
            })
            .collect();
        let anchors = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&multi)
            .map_err(|e| ScreenError::Pattern(e.to_string()))?;
        let digit_runs = (0..detectors.len())
            .filter(|&i| {
                matches!(
                    detectors[i].check,
                    Check::Runs {
                        trigger: Trigger::Digit,
                        ..
                    }
                )
            })
            .collect();
        if detectors.len() > MAX_DETECTORS {
            return Err(ScreenError::Pattern("too many detectors".into()));
        }
        let regexes: Vec<meta::Regex> = detectors.iter().map(|d| d.regex.clone()).collect();
        let create: CacheFn =
            Box::new(move || regexes.iter().map(meta::Regex::create_cache).collect());
        Ok(SecretScanner {
            detectors,
            anchors,
            anchor_masks,
            single,
            pairs,
            digit_runs,
            caches: Pool::new(create),
        })
    }

    /// Which anchor literals occur in `bytes` (bit = literal id), ASCII
    /// case-insensitively. Every start position of a literal is visited:
    /// a leftmost-longest search, restarted one byte after each match
    /// start, reports the longest literal at each such position, and the
    /// others there are its prefixes.
    #[inline(never)]
    fn present(&self, bytes: &[u8]) -> u128 {
        let lower = bytes.to_ascii_lowercase();
        let mut present = 0u128;
        let mut at = 0;
        while let Some(m) = self
            .anchors
            .find(AcInput::new(&lower).span(at..lower.len()))
        {
            present |= self.anchor_masks[m.pattern().as_usize()];
            at = m.start() + 1;
        }
        for &(b, id) in &self.single {
            if bytes.contains(&b)
                || (b.is_ascii_alphabetic() && bytes.contains(&b.to_ascii_uppercase()))
            {
                present |= 1u128 << id;
            }
        }
        for &([first, second], id) in &self.pairs {
            let cases = [first, first.to_ascii_uppercase()];
            let found = cases[..1 + usize::from(first.is_ascii_alphabetic())]
                .iter()
                .any(|&first| {
                    let mut from = 0;
                    while let Some(k) = find_byte(first, &bytes[from..]) {
                        let at = from + k;
                        if bytes
                            .get(at + 1)
                            .is_some_and(|b| b.eq_ignore_ascii_case(&second))
                        {
                            return true;
                        }
                        from = at + 1;
                    }
                    false
                });
            if found {
                present |= 1u128 << id;
            }
        }
        present
    }

    /// All non-overlapping matches in `text`, sorted by start offset.
    pub(crate) fn scan(&self, text: &str) -> Vec<SecretMatch> {
        let bytes = text.as_bytes();
        let present = self.present(bytes);
        let mut caches = self.caches.get();
        let mut found = Vec::new();
        // Per detector: where its previous match ended (see `search`).
        let mut last_end = [0usize; MAX_DETECTORS];
        for (i, (det, cache)) in self.detectors.iter().zip(caches.iter_mut()).enumerate() {
            let last_end = &mut last_end[i];
            match det.check {
                Check::Anchors(ref groups) => {
                    if groups.iter().all(|g| g & present != 0) {
                        det.search(cache, text, 0..bytes.len(), last_end, &mut found);
                    }
                }
                Check::Runs {
                    ref class, trigger, ..
                } => match trigger {
                    Trigger::MinLen(min_len) => {
                        let in_class = |b: u8| class[usize::from(b)];
                        long_runs(bytes, in_class, min_len, |start, end| {
                            det.search_run(cache, text, start..end, last_end, &mut found);
                            true
                        });
                    }
                    Trigger::Byte(t) => {
                        let mut from = 0;
                        while let Some(k) = find_byte(t, &bytes[from..]) {
                            let (start, end) = run_around(bytes, from + k, class);
                            det.search_run(cache, text, start..end, last_end, &mut found);
                            from = end;
                        }
                    }
                    // Below, sharing one digit search.
                    Trigger::Digit => {}
                },
            }
        }
        // Every digit detector's class holds the digits, so each digit lies
        // in one run per detector; a run is handled at its first digit.
        let mut done_until = [0usize; MAX_DETECTORS];
        let mut from = 0;
        while !self.digit_runs.is_empty() {
            let Some(k) = find_digit(&bytes[from..]) else {
                break;
            };
            let at = from + k;
            let mut next = usize::MAX;
            for &i in &self.digit_runs {
                let det = &self.detectors[i];
                if at >= done_until[i] {
                    if let Check::Runs { ref class, .. } = det.check {
                        let (start, end) = run_around(bytes, at, class);
                        done_until[i] = end;
                        det.search_run(
                            &mut caches[i],
                            text,
                            start..end,
                            &mut last_end[i],
                            &mut found,
                        );
                    }
                }
                next = next.min(done_until[i]);
            }
            from = next.max(at + 1);
        }
        resolve_overlaps(found)
    }
}

/// Most detectors a scanner holds (fixed-size per-scan state).
const MAX_DETECTORS: usize = 32;

impl Detector {
    /// Searches the run `bytes[run]` of a run-gated detector when its seed
    /// holds, widened by its context bytes.
    fn search_run(
        &self,
        cache: &mut meta::Cache,
        text: &str,
        run: std::ops::Range<usize>,
        last_end: &mut usize,
        found: &mut Vec<SecretMatch>,
    ) {
        if let Check::Runs { seed, pad, .. } = self.check {
            if seed(&text.as_bytes()[run.clone()]) {
                let window = run.start.saturating_sub(pad)..(run.end + pad).min(text.len());
                self.search(cache, text, window, last_end, found);
            }
        }
    }

    /// Runs the regex over `window` of `text` (the whole text stays the
    /// look-around context), continuing after the previous match's end as
    /// one pass over the whole text would, and keeps validated matches.
    #[inline(never)]
    fn search(
        &self,
        cache: &mut meta::Cache,
        text: &str,
        window: std::ops::Range<usize>,
        last_end: &mut usize,
        found: &mut Vec<SecretMatch>,
    ) {
        let hay = text.as_bytes();
        let mut at = window.start.max(*last_end);
        while at < window.end {
            let input = Input::new(hay).span(at..window.end);
            let Some(whole) = self.regex.search_with(cache, &input) else {
                return;
            };
            *last_end = whole.end();
            at = whole.end() + usize::from(whole.is_empty());
            let span = if self.group == 0 {
                Some(whole.range())
            } else {
                self.group_span(cache, hay, whole.range())
            };
            let Some(m) = span else {
                continue;
            };
            // Byte-level matching can end inside a multi-byte character
            // only at a repetition bound; such a span is not a token.
            if !text.is_char_boundary(m.start) || !text.is_char_boundary(m.end) {
                continue;
            }
            if (self.validate)(text, m.start, m.end) {
                found.push(SecretMatch {
                    kind: self.kind,
                    start: m.start,
                    end: m.end,
                });
            }
        }
    }

    /// The span of capture group 1 of the match at `whole`.
    fn group_span(
        &self,
        cache: &mut meta::Cache,
        hay: &[u8],
        whole: std::ops::Range<usize>,
    ) -> Option<std::ops::Range<usize>> {
        let mut slots = [None; 4];
        let input = Input::new(hay).span(whole).anchored(Anchored::Yes);
        self.regex.search_slots_with(cache, &input, &mut slots)?;
        Some(slots[2]?.get()..slots[3]?.get())
    }
}

/// Keeps the most specific match where spans overlap: higher priority kind
/// first, then the longer span.
fn resolve_overlaps(mut found: Vec<SecretMatch>) -> Vec<SecretMatch> {
    found.sort_by_key(|m| (m.kind.priority(), usize::MAX - (m.end - m.start), m.start));
    let mut kept: Vec<SecretMatch> = Vec::with_capacity(found.len());
    for m in found {
        if kept.iter().all(|k| m.end <= k.start || m.start >= k.end) {
            kept.push(m);
        }
    }
    kept.sort_by_key(|m| m.start);
    kept
}

/// A name in snake_case and lower case (`apiKey`, `API-KEY` → `api_key`).
fn snake_lower(key: &str) -> String {
    let mut k = String::with_capacity(key.len() + 4);
    let mut prev_lower = false;
    for c in key.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            k.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        k.push(match c {
            '-' | '.' => '_',
            c => c.to_ascii_lowercase(),
        });
    }
    k
}

/// Names (snake_case, lower case) of values that are public by design:
/// public keys and tokens (`publicToken`, publishable keys) and
/// anti-forgery tokens, which every page carries.
fn is_public_by_design(k: &str) -> bool {
    k.split('_').any(|p| {
        matches!(
            p,
            "public" | "pub" | "publishable" | "csrf" | "xsrf" | "csrftoken" | "xsrftoken"
        )
    })
}

/// Name fragments of JSON object members whose string value is a credential
/// (`{"password": "…"}`, `{"api_key": "…"}`).
pub(crate) fn is_credential_key(key: &str) -> bool {
    let k = snake_lower(key);
    let hit = [
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "api_key",
        "apikey",
        "access_key",
        "private_key",
        "auth_token",
        "access_token",
        "refresh_token",
        "client_secret",
        "bearer",
        "session_token",
        "credential",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k == "token"
        || k.ends_with("_token")
        || k.split('_')
            .any(|p| p == "pass" || p == "pwd" || p == "secrete");
    let descriptive = [
        "_id", "_name", "_url", "_uri", "_file", "_path", "_type", "_hint", "_length", "_len",
        "_size", "_count", "_expires", "_expiry", "_ttl", "_at",
    ]
    .iter()
    .any(|s| k.ends_with(s))
        || k.starts_with("max_")
        || k.starts_with("num_")
        || k.contains("tokens");
    hit && !descriptive && !names_a_key_vault(&k) && !is_public_by_design(&k)
}

/// Names (snake_case, lower case) of an Azure Key Vault rather than of a secret:
/// `key_vault`, `keyvault_name`, `key_vault_to_store_secrets` (azure-service-operator's
/// `keyVaultToStoreSecrets`, whose value is a vault's name; gitleaks' generic rule
/// allows it too). A secret kept in the vault still counts: `key_vault_secret`,
/// `keyvault_password` end in the credential they hold.
fn names_a_key_vault(k: &str) -> bool {
    let words: Vec<&str> = k.split('_').filter(|w| !w.is_empty()).collect();
    let vault = words.contains(&"keyvault") || words.windows(2).any(|w| w == ["key", "vault"]);
    let holds_one = words.last().is_some_and(|last| {
        matches!(
            *last,
            "secret"
                | "password"
                | "passwd"
                | "pwd"
                | "token"
                | "key"
                | "credential"
                | "passphrase"
        )
    });
    vault && !holds_one
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<SecretKind> {
        let s = SecretScanner::new(&SecretKind::ALL).unwrap();
        s.scan(text).into_iter().map(|m| m.kind).collect()
    }

    fn has(text: &str, kind: SecretKind) -> bool {
        kinds(text).contains(&kind)
    }

    /// Every detector over the whole text, without gates.
    fn reference_scan(text: &str) -> Vec<SecretMatch> {
        static RES: std::sync::OnceLock<Vec<regex::bytes::Regex>> = std::sync::OnceLock::new();
        let res = RES.get_or_init(|| {
            SPECS
                .iter()
                .map(|s| {
                    regex::bytes::RegexBuilder::new(s.pattern)
                        .unicode(false)
                        .build()
                        .unwrap()
                })
                .collect()
        });
        let mut found = Vec::new();
        for (spec, re) in SPECS.iter().zip(res) {
            for caps in re.captures_iter(text.as_bytes()) {
                let Some(m) = caps.get(spec.group) else {
                    continue;
                };
                if !text.is_char_boundary(m.start()) || !text.is_char_boundary(m.end()) {
                    continue;
                }
                if (spec.validate)(text, m.start(), m.end()) {
                    found.push(SecretMatch {
                        kind: spec.kind,
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        }
        resolve_overlaps(found)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn gated_scan_equals_reference_scan(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "AKIAZ7QWERTYUIOP1234", "ASIA", " ", "-", ".", ":", "::", "@", "example.com",
                "4111", "1111", "078", "05", "1123", "192.168.1.1", "2001:db8", "GB82", "WEST",
                "1234", "5698", "7654", "32", "(415)", "555-0132", "+44", "password", "=", "\"",
                "'", "s3cr3t-Pa55", "token", "Zx8Qm2LpT4vR9sKw7YbN3cJh6Fd", "eyJhbGciOiJIUzI1NiJ9",
                "eyJzdWIiOiIxIn0", "ghp_", "sk-", "xoxb-", "://", "user:pw", "curl", "-u", "/",
                "é", "\n", "aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8Rv3TkLp",
                "0", "9", "a", "Z", "_", "+", "%", "==",
            ]), 0..30),
        ) {
            static S: std::sync::OnceLock<SecretScanner> = std::sync::OnceLock::new();
            let text = parts.concat();
            let scanner = S.get_or_init(|| SecretScanner::new(&SecretKind::ALL).unwrap());
            proptest::prop_assert_eq!(scanner.scan(&text), reference_scan(&text));
        }
    }

    #[test]
    fn gated_scan_equals_reference_scan_on_long_texts() {
        // Secrets at every offset around the middle of long filler, in
        // either case: the anchor search and the run triggers must not
        // depend on where in a text a secret sits.
        let scanner = SecretScanner::new(&SecretKind::ALL).unwrap();
        let secrets = [
            "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",
            r#"DB_PASSWORD = "s3cr3t-Pa55""#,
            "postgres://app:hunter2hunter@db.internal:5432/app",
            "curl -u elastic:P@ssw0rd$1x https://localhost:9200",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N",
            "https://hooks.slack.com/services/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",
            "AKIAZ7QWERTYUIOP1234 and 2001:db8::1 and 4111 1111 1111 1111",
        ];
        for secret in secrets {
            for text in [secret.to_owned(), secret.to_ascii_uppercase()] {
                for pad in 100..140 {
                    let filler: String = "lorem ipsum dolor sit amet "
                        .chars()
                        .cycle()
                        .take(pad)
                        .collect();
                    let long = format!("{filler} {text}{}", " dolor".repeat(20));
                    assert_eq!(scanner.scan(&long), reference_scan(&long), "{long}");
                }
            }
        }
    }

    #[test]
    fn aws_access_key() {
        assert!(has(
            "key AKIAZ7QWERTYUIOP1234 here",
            SecretKind::AwsAccessKey
        ));
        assert!(!has("akiaz7qwertyuiop1234", SecretKind::AwsAccessKey));
        assert!(!has("AKIAZ7Q", SecretKind::AwsAccessKey));
        assert!(!has(
            "aws_access_key: AKIAIOSFODNN7EXAMPLE",
            SecretKind::AwsAccessKey
        ));
        assert!(!has(
            "TODAYINASIAASACKOFRICEFELLOVER",
            SecretKind::AwsAccessKey
        ));
    }

    #[test]
    fn aws_secret_key_needs_exactly_forty() {
        let ok = r#"aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8Rv3TkLp""#;
        assert!(has(ok, SecretKind::AwsSecretKey));
        let long = r#"aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8Rv3TkLpa""#;
        assert!(!has(long, SecretKind::AwsSecretKey));
    }

    #[test]
    fn jwt_requires_json_header() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(kinds(jwt), vec![SecretKind::Jwt]);
        let truncated_header =
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc";
        assert!(!has(truncated_header, SecretKind::Jwt));
        assert!(!has("eyJAAAA.eyJBBB", SecretKind::Jwt));
    }

    #[test]
    fn sealgate_tokens_whatever_their_dashes() {
        // Two dashes split this one into runs too short for the entropy detector.
        for token in [
            "sgk_7iq8ytqkC5yjQhpo-ASzK-51TOkzJ4JgOJxFn6P3IVs",
            "sgk_Tqlijp43aVfetJsnCd-3CbMKwVHnx2SJV_Fj-IAYp6o",
            "sgk_Zx3mP9qR2vT8wY4bN6cK1dF5gH7jL0sA2eU4iO6pQ8r",
        ] {
            assert!(has(token, SecretKind::SealgateToken), "{token}");
            assert!(
                has(&format!("approved: {token}."), SecretKind::SealgateToken),
                "{token} in a sentence"
            );
        }
        // Shorter or longer than a token, or a placeholder: not one.
        assert!(!has(
            "sgk_7iq8ytqkC5yjQhpo-ASzK-51TOkzJ4JgOJxFn6P3IV",
            SecretKind::SealgateToken
        ));
        assert!(!has(
            "sgk_7iq8ytqkC5yjQhpo-ASzK-51TOkzJ4JgOJxFn6P3IVsA",
            SecretKind::SealgateToken
        ));
        assert!(!has(
            "sgk_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            SecretKind::SealgateToken
        ));
    }

    #[test]
    fn vendor_tokens() {
        assert!(has(
            "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",
            SecretKind::GithubToken
        ));
        assert!(!has(
            "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            SecretKind::GithubToken
        ));
        assert!(has("glpat-hellOworld380_testin", SecretKind::GitlabToken));
        assert!(!has("glpat-hellOWorld380 testin", SecretKind::GitlabToken));
        assert!(has(
            "xoxb-34532454-e039d02840a0b9379c",
            SecretKind::SlackToken
        ));
        assert!(!has("xoxb-12345-abcd234", SecretKind::SlackToken));
        assert!(has(
            "https://hooks.slack.com/services/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",
            SecretKind::SlackWebhook
        ));
        assert!(has(
            "sk_live_ReTllpYQYfIZu2Jnf2lAPFjD",
            SecretKind::StripeKey
        ));
        assert!(!has(
            "pk_live_j5krY8XTgIcDaHDb3YrsAfCl",
            SecretKind::StripeKey
        ));
        assert!(has(
            "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",
            SecretKind::OpenaiKey
        ));
        assert!(!has(
            "sk-Xi8tcNiHV9awbCcvilTeT4BlbkFJ3UDnpdEwNNm6wVBpYM0o",
            SecretKind::OpenaiKey
        ));
    }

    #[test]
    fn private_key_block() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpQIBAAKCAQEAn6/O8li+SX4m98LLYt\n-----END RSA PRIVATE KEY-----";
        assert!(has(pem, SecretKind::PrivateKey));
        assert!(!has(
            "-----BEGIN PRIVATE KEY-----\nanything\n-----END PRIVATE KEY-----",
            SecretKind::PrivateKey
        ));
        assert!(!has("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----", SecretKind::PrivateKey));
    }

    #[test]
    fn passwords_in_assignments_and_urls() {
        assert!(has(r#"db_password = "s3cr3t-Pa55""#, SecretKind::Password));
        assert!(has("PASSWORD=Tr0ub4dor&3", SecretKind::Password));
        assert!(!has(r#"password = """#, SecretKind::Password));
        assert!(!has("password = ${DB_PASSWORD}", SecretKind::Password));
        assert!(!has("max_tokens: 1000", SecretKind::Password));
        assert!(has(
            "postgres://app:hunter2hunter@db.internal:5432/app",
            SecretKind::UrlPassword
        ));
        assert!(!has(
            "https://url:8000 @something else",
            SecretKind::UrlPassword
        ));
        assert!(has(
            "curl -u elastic:P@ssw0rd$1x https://localhost:9200",
            SecretKind::UrlPassword
        ));
        assert!(!has(
            "curl -u user:pass https://localhost:9200",
            SecretKind::UrlPassword
        ));
    }

    #[test]
    fn credit_card_requires_luhn() {
        assert!(has(
            "card 4111 1111 1111 1111 exp 12/29",
            SecretKind::CreditCard
        ));
        assert!(has("4012-8888-8888-1881", SecretKind::CreditCard));
        assert!(
            !has("4012-8888-8888-1882", SecretKind::CreditCard),
            "Luhn-invalid"
        );
        assert!(
            !has("4012-8888 8888-1881", SecretKind::CreditCard),
            "mixed separators"
        );
    }

    #[test]
    fn ssn_rules() {
        assert!(has("ssn 078-05-1123", SecretKind::UsSsn));
        assert!(!has("078-05-0000", SecretKind::UsSsn));
        assert!(!has("666-12-3456", SecretKind::UsSsn));
        assert!(!has("078 00 1123", SecretKind::UsSsn));
        assert!(!has("693-09.4444", SecretKind::UsSsn));
    }

    #[test]
    fn iban_checksum() {
        assert!(has(
            "pay to GB82 WEST 1234 5698 7654 32 today",
            SecretKind::Iban
        ));
        assert!(has("DE89370400440532013000", SecretKind::Iban));
        assert!(
            !has("GB82 WEST 1234 5698 7654 33", SecretKind::Iban),
            "bad checksum"
        );
        assert!(
            !has("DE8937040044053201300", SecretKind::Iban),
            "wrong length"
        );
    }

    #[test]
    fn email_phone_ip() {
        assert!(has("write to jane.doe+x@example.co.uk", SecretKind::Email));
        assert!(!has("my email is info@presidio.", SecretKind::Email));
        assert!(has("call (415) 555-0132", SecretKind::PhoneNumber));
        assert!(has("call +44 20 7123 4567", SecretKind::PhoneNumber));
        assert!(!has("version 2024-01-15", SecretKind::PhoneNumber));
        assert!(has("host 192.168.1.1.", SecretKind::IpAddress));
        assert!(has("Server IP: 2001:db8::1", SecretKind::IpAddress));
        assert!(!has("256.256.256.256", SecretKind::IpAddress));
        assert!(!has("1.2.3.4.5.6", SecretKind::IpAddress));
        assert!(!has("1.2.3.04", SecretKind::IpAddress));
        assert!(!has("MAC address aa:bb:cc:dd:ee:ff", SecretKind::IpAddress));
    }

    #[test]
    fn high_entropy_token_and_overlap() {
        assert_eq!(
            kinds("token: Zx8Qm2LpT4vR9sKw7YbN3cJh6Fd"),
            vec![SecretKind::Password]
        );
        assert!(has(
            "blob Zx8Qm2LpT4vR9sKw7YbN3cJh6FdA1 end",
            SecretKind::HighEntropyToken
        ));
        assert!(!has(
            "ThisIsJustAVeryLongIdentifierName",
            SecretKind::HighEntropyToken
        ));
        assert!(!has(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
            SecretKind::HighEntropyToken
        ));
    }

    #[test]
    fn ipv6_with_dotted_tail_and_prefixes() {
        let spans = |t: &str| -> Vec<String> {
            SecretScanner::new(&SecretKind::ALL)
                .unwrap()
                .scan(t)
                .into_iter()
                .filter(|m| m.kind == SecretKind::IpAddress)
                .map(|m| t[m.start..m.end].to_owned())
                .collect()
        };
        assert_eq!(
            spans("0:0:0:0:0:FFFF:129.144.52.38"),
            ["0:0:0:0:0:FFFF:129.144.52.38"]
        );
        assert_eq!(spans("2001:db8::192.168.1.1"), ["2001:db8::192.168.1.1"]);
        assert!(
            spans("::ffff:192.168.1").is_empty(),
            "incomplete dotted tail"
        );
        assert!(
            spans("2001:db8::256.1.1.1").is_empty(),
            "bad octet in the tail"
        );
        assert_eq!(spans("2001:db8::/9999"), ["2001:db8::"]);
        assert_eq!(spans("fe80::1%eth0/64"), ["fe80::1%eth0/64"]);
        // An IPv4 address after a colon: `host:addr`, or the tail of
        // something that is not an IPv6 address.
        assert_eq!(spans("text::ffff:192.0.2.1"), ["192.0.2.1"]);
        assert_eq!(spans("ip:10.0.0.1"), ["10.0.0.1"]);
        assert!(spans("std::env::var and MyClass::toString").is_empty());
    }

    #[test]
    fn card_lengths_follow_the_issuer() {
        let ok = |n: &str| card_issuer_length(&digits_of(n));
        assert!(ok("4111111111111111") && ok("4222222222222"), "Visa 16, 13");
        assert!(!ok("41111111111111"), "Visa has no 14-digit numbers");
        assert!(ok("122000000000003"), "UATP 15");
        assert!(!ok("1748503543012"), "UATP is 15 digits, not 13");
        assert!(
            ok("371449635398431") && !ok("3714496353984311"),
            "Amex 15 only"
        );
        assert!(ok("30569309025904") && ok("5019717010103742") && ok("6759649826438453"));
        assert!(ok("2221000000000009"), "Mastercard 2-series");
        assert!(!ok("7000000000000000"), "no issuer");
        assert!(!has("1748503543012", SecretKind::CreditCard));
        assert!(has("my card: 122000000000003", SecretKind::CreditCard));
    }

    #[test]
    fn voided_sample_ssns_are_not_reported() {
        assert!(
            !has("ssn 078-05-1120", SecretKind::UsSsn),
            "Woolworth wallet"
        );
        assert!(!has("ssn 078051120", SecretKind::UsSsn));
        assert!(!has("ssn 219-09-9999", SecretKind::UsSsn), "SSA leaflet");
        assert!(has("ssn 078-05-1121", SecretKind::UsSsn));
    }

    #[test]
    fn anthropic_keys_in_their_exact_format() {
        let body93 = "abc123xyz-456def789ghij-klmnopqrstuvwx-3456yza789bcde-1234fghijklmnopby56aaaogaopaaaabc123xyz";
        assert_eq!(body93.len(), 93);
        assert!(has(
            &format!("sk-ant-api03-{body93}AA"),
            SecretKind::AnthropicKey
        ));
        assert!(has(
            &format!("sk-ant-admin01-{body93}AA"),
            SecretKind::AnthropicKey
        ));
        // Same body, no `AA` terminator: judged as a loose token, and its
        // ascending runs mark it as a sample.
        assert!(!has(
            &format!("sk-ant-api03-{body93}BB"),
            SecretKind::AnthropicKey
        ));
        let fill = "x".repeat(93);
        assert!(!has(
            &format!("sk-ant-api03-{fill}AA"),
            SecretKind::AnthropicKey
        ));
        assert!(!has(
            "sk-ant-api03-abc123xyz-456de-klMnopqrstuvwx-1234fghijklmnopAA",
            SecretKind::AnthropicKey
        ));
    }

    #[test]
    fn curl_user_credentials() {
        assert!(has(
            r#"curl -u "d2LkV78zLx!t:" https://localhost:9200"#,
            SecretKind::UrlPassword
        ));
        assert!(has(
            "curl -u sk_test_4eC39HqLyjWDarjtT1zdp7dc: https://api.stripe.com",
            SecretKind::StripeKey
        ));
        assert!(!has(
            r#"curl -u "myusername:" https://localhost"#,
            SecretKind::UrlPassword
        ));
        assert!(!has(
            r#"curl -u ":" https://localhost:9200"#,
            SecretKind::UrlPassword
        ));
        assert!(has(
            r#"curl -X POST --user "{acd3c08b-74e8-4f44-a2d0-80694le24f46}":"{ZqL5kVrX1n8tA2}" https://x"#,
            SecretKind::UrlPassword
        ));
        assert!(!has(
            r#"curl --user "{username}:{password}" https://x"#,
            SecretKind::UrlPassword
        ));
        assert!(!has(
            "curl --user neo4j:[PASSWORD] http://[IP]:7474/",
            SecretKind::UrlPassword
        ));
    }

    #[test]
    fn password_literals_and_their_look_alikes() {
        // A string literal ends with the quote that opened it.
        assert!(!has(
            r#"private_key "hopenobodyfindsthisone';"#,
            SecretKind::Password
        ));
        assert!(has(
            r#"private_key "hopenobodyfindsthisone";"#,
            SecretKind::Password
        ));
        // Stand-in words mark sample values.
        assert!(!has(r#"password = "somefakekey""#, SecretKind::Password));
        assert!(!has(r#"api_key = "dummy-key-123""#, SecretKind::Password));
        // Symbols are variety too.
        assert!(has("db_pass: 'A,.:-¨@*¿?!'", SecretKind::Password));
        // Unquoted private keys, C arrays, getenv-style defaults.
        assert!(has(
            "private_key: m{{h}o)p${e]nob(ody[finds>-_$#thisone}}\"",
            SecretKind::Password
        ));
        assert!(has(
            r#"char secrete[25] = "m{{h}o)p${e]nob(ody";"#,
            SecretKind::Password
        ));
        assert!(
            !has("db_pass[] = 'm{{h}o)p${e]nob(ody';", SecretKind::Password),
            "C char literal"
        );
        assert!(!has(
            "aws_secret_access_key = @'m{{h}o)p${e]nob(ody';",
            SecretKind::Password
        ));
        assert!(has(
            r#"password = @"m{{h}o)p${e]nob(ody";"#,
            SecretKind::Password
        ));
        assert!(has(
            r#"utils.GetEnvOrDefault("api_token", "dafa7817-e246-48f3-91a7-e87653d587b8")"#,
            SecretKind::Password
        ));
        assert!(!has(
            r#"print("password", "is required")"#,
            SecretKind::Password
        ));
        // An unquoted right-hand side ending a statement is an expression.
        assert!(!has(
            "passwd = getSecretFromVault2(x);",
            SecretKind::Password
        ));
        assert!(!has(
            "passwd = m{{h}o)p${e]nob(ody[finds>-_$#thisone}};",
            SecretKind::Password
        ));
        // Public by design.
        assert!(!has(
            r#"publicToken = "9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit""#,
            SecretKind::Password
        ));
        assert!(!has(
            r#"apiKey: "6fe4476ee5a1832882e326b506d14126","#,
            SecretKind::Password
        ));
        assert!(has(
            r#"apiKey: "6fe4476ee5a1832882e326b506d14127","#,
            SecretKind::Password
        ));
        // A comma followed by punctuation is part of a symbol-rich bare value; a comma
        // before a letter, digit or space ends it (a list, or the next key=value field).
        assert!(has("secrete = A,.:-¨@*¿?!", SecretKind::Password));
        assert!(has("db_pass := Xq7,!Lm2pR9", SecretKind::Password));
        for list in [
            "password_rules: upper, lower, digit",
            "secrets: DB,Redis",
            "credentials: GitHub,Stripe,Slack",
            "password_policy: min8,upper1",
            "token: A1,B2,C3,D4",
        ] {
            assert!(!has(list, SecretKind::Password), "{list}");
        }
        // The credential in a comma-separated list of fields is still found whatever
        // the next field holds.
        for fields in [
            "--set auth.postgresPassword=Zq81mXw9Lk,image.registry=https://registry.internal",
            "user=svc,password=Tr0ub4dor&3,url=jdbc:postgresql://db:5432/app",
            "token=Zq81mXw9Lk,sample_rate=0.25",
            "secret=Zq81mXw9Lk,account=1234567",
        ] {
            let found = SecretScanner::new(&SecretKind::ALL)
                .unwrap()
                .scan(fields)
                .into_iter()
                .find(|m| m.kind == SecretKind::Password)
                .unwrap_or_else(|| panic!("missed: {fields}"));
            assert!(
                !fields[found.start..found.end].contains(','),
                "{fields}: {}",
                &fields[found.start..found.end]
            );
        }
        // A placeholder phrase that says where a credential goes is not one.
        for stand_in in [
            r#"password: "real_key""#,
            r#"api_key = "your-api-key""#,
            r#"token = 'insert_github_token_here'"#,
        ] {
            assert!(!has(stand_in, SecretKind::Password), "{stand_in}");
        }
        // Weak real secrets that happen to be words are still reported.
        for value in [
            r#"password: "real_key_7""#,
            r#"password: "correct-horse-battery""#,
            r#"api_key = "Key_Of_Mine""#,
            r#"SECRET_KEY = 'super-secret-key'"#,
            r#"password = "my-secret-pass""#,
            r#"password: "admin-pass""#,
            r#"secret="jwt_secret_key""#,
            r#"password = "lemon-token-orbit-sprout""#,
        ] {
            assert!(has(value, SecretKind::Password), "{value}");
        }
        let csrf = "csrf-token=Mj2qykJO5rELyHgezQ69nzUX0i3OH67V7+V4eUrLfpuyOuxmiW9rhROG/Whikle15syazJOkrjJa3U2AbhIvUw==";
        assert!(kinds(csrf).is_empty(), "{:?}", kinds(csrf));
    }

    #[test]
    fn credential_key_names() {
        assert!(is_credential_key("password"));
        assert!(is_credential_key("DB_PASSWORD"));
        assert!(is_credential_key("apiKey".to_ascii_lowercase().as_str()));
        assert!(is_credential_key("github_token"));
        assert!(!is_credential_key("max_tokens"));
        assert!(!is_credential_key("token_url"));
        assert!(!is_credential_key("secret_name"));
        assert!(!is_credential_key("publicToken"));
        assert!(!is_credential_key("stripe_publishable_key"));
        assert!(!is_credential_key("csrf-token"));
        // An Azure Key Vault's name, not a secret; a secret kept there still is one,
        // and so are credentials named after any other store.
        assert!(!is_credential_key("keyVaultToStoreSecrets"));
        assert!(!is_credential_key("key_vault_secrets"));
        assert!(is_credential_key("key_vault_secret"));
        assert!(is_credential_key("keyvault_password"));
        for credential in [
            "vault_token",
            "ansible_vault_password",
            "keystore_password",
            "credentials",
            "backend_credentials",
            "vault_secrets",
            "store_credentials",
            "client_secret_vault",
            "private_key_store",
            "apiKeyManager",
            "auth_token_store",
        ] {
            assert!(is_credential_key(credential), "{credential}");
        }
        assert!(is_credential_key(
            "char secrete".rsplit(' ').next().unwrap()
        ));
    }
}
