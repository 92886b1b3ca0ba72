//! Policy bundles and their versions.
//!
//! A [`Bundle`] is a set of `.rego` sources plus an optional data document, checked at
//! the edge (names, sizes, JSON numbers) so everything past construction is known good.
//! Its [`PolicyVersion`] is the SHA-256 of its RFC 8785 canonical form, so the same
//! content always has the same version whatever the key order it arrived in. This
//! module owns only content and identity; compiling and evaluating live in `prepared`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Most `.rego` files a bundle may hold.
pub const MAX_FILES: usize = 256;
/// Longest file name, in bytes.
pub const MAX_NAME_BYTES: usize = 200;
/// Largest single `.rego` source, in bytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Largest canonical form of a whole bundle (sources and data), in bytes.
pub const MAX_BUNDLE_BYTES: usize = 4 * 1024 * 1024;

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle holds no `.rego` file.
    #[error("a policy bundle needs at least one .rego file")]
    Empty,
    /// More than [`MAX_FILES`] files.
    #[error("a policy bundle holds at most {MAX_FILES} files, got {0}")]
    TooManyFiles(usize),
    /// A file name is not a safe relative `.rego` path.
    #[error("invalid policy file name {name:?}: {why}")]
    InvalidName {
        /// The offending name (truncated when very long).
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A file is larger than [`MAX_FILE_BYTES`].
    #[error("policy file {name:?} is {size} bytes; the limit is {MAX_FILE_BYTES}")]
    FileTooLarge {
        /// The file's name.
        name: String,
        /// Its size in bytes.
        size: usize,
    },
    /// The whole bundle is larger than [`MAX_BUNDLE_BYTES`].
    #[error("policy bundle is {0} bytes in canonical form; the limit is {MAX_BUNDLE_BYTES}")]
    TooLarge(usize),
    /// The data document is not a JSON object.
    #[error("bundle data must be a JSON object")]
    DataNotObject,
    /// The bundle cannot be canonicalized (for example an integer beyond ±2^53 in data).
    #[error("bundle cannot be canonicalized: {0}")]
    Canonical(String),
}

/// A set of `.rego` sources and an optional data document, validated.
///
/// Serializes as `{"files": {"name.rego": "source", ...}, "data": {...} | null}`;
/// deserializing runs the same checks as [`Bundle::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BundleDocument", into = "BundleDocument")]
pub struct Bundle {
    files: BTreeMap<String, String>,
    data: Option<Value>,
    /// RFC 8785 bytes of `{"files": ..., "data": ...}`, computed once at construction.
    canonical: Vec<u8>,
    version: PolicyVersion,
}

/// The wire and storage shape of a bundle.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleDocument {
    files: BTreeMap<String, String>,
    #[serde(default)]
    data: Option<Value>,
}

impl TryFrom<BundleDocument> for Bundle {
    type Error = BundleError;

    fn try_from(doc: BundleDocument) -> Result<Self, Self::Error> {
        Bundle::new(doc.files, doc.data)
    }
}

impl From<Bundle> for BundleDocument {
    fn from(bundle: Bundle) -> Self {
        BundleDocument {
            files: bundle.files,
            data: bundle.data,
        }
    }
}

impl Bundle {
    /// Checks and builds a bundle from `name.rego -> source` and an optional data document.
    ///
    /// A JSON `null` for `data` means no data.
    pub fn new(files: BTreeMap<String, String>, data: Option<Value>) -> Result<Self, BundleError> {
        if files.is_empty() {
            return Err(BundleError::Empty);
        }
        if files.len() > MAX_FILES {
            return Err(BundleError::TooManyFiles(files.len()));
        }
        for (name, source) in &files {
            check_name(name)?;
            if source.len() > MAX_FILE_BYTES {
                return Err(BundleError::FileTooLarge {
                    name: name.clone(),
                    size: source.len(),
                });
            }
        }
        let data = match data {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(Value::Object(map)),
            Some(_) => return Err(BundleError::DataNotObject),
        };

        let files_json = files
            .iter()
            .map(|(name, source)| (name.clone(), Value::String(source.clone())))
            .collect();
        let mut document = serde_json::Map::new();
        document.insert("files".to_owned(), Value::Object(files_json));
        document.insert("data".to_owned(), data.clone().unwrap_or(Value::Null));
        let canonical = sealgate_core::canonical::value_to_vec(&Value::Object(document))
            .map_err(|e| BundleError::Canonical(e.to_string()))?;
        if canonical.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge(canonical.len()));
        }
        let version = PolicyVersion(hex::encode(Sha256::digest(&canonical)));

        Ok(Bundle {
            files,
            data,
            canonical,
            version,
        })
    }

    /// A bundle of `.rego` files and no data.
    pub fn from_files<I, N, S>(files: I) -> Result<Self, BundleError>
    where
        I: IntoIterator<Item = (N, S)>,
        N: Into<String>,
        S: Into<String>,
    {
        let files = files
            .into_iter()
            .map(|(name, source)| (name.into(), source.into()))
            .collect();
        Bundle::new(files, None)
    }

    /// The same sources with `data` as the data document (replacing any earlier one).
    pub fn with_data(self, data: Value) -> Result<Self, BundleError> {
        Bundle::new(self.files, Some(data))
    }

    /// The sources, by file name.
    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    /// The data document, if any (always a JSON object).
    pub fn data(&self) -> Option<&Value> {
        self.data.as_ref()
    }

    /// SHA-256 of [`Bundle::canonical_bytes`].
    pub fn version(&self) -> &PolicyVersion {
        &self.version
    }

    /// RFC 8785 canonical JSON of `{"files": {...}, "data": {...} | null}`.
    pub fn canonical_bytes(&self) -> &[u8] {
        &self.canonical
    }
}

/// Accepts `dir/name.rego` paths made of `[A-Za-z0-9._-]` segments; nothing absolute,
/// nothing hidden, no `.` or `..`, so a name can never escape a directory it is
/// written under.
fn check_name(name: &str) -> Result<(), BundleError> {
    let invalid = |why| BundleError::InvalidName {
        name: name.chars().take(80).collect(),
        why,
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(invalid("too long"));
    }
    let Some(stem) = name.strip_suffix(".rego") else {
        return Err(invalid("only .rego files belong in a bundle"));
    };
    if stem.is_empty() || stem.ends_with('/') {
        return Err(invalid("no file name before .rego"));
    }
    if name.starts_with('/') {
        return Err(invalid("must be relative"));
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return Err(invalid("empty path segment"));
        }
        if segment == "." || segment == ".." {
            return Err(invalid("no . or .. segments"));
        }
        if segment.starts_with('.') {
            return Err(invalid("no hidden files or directories"));
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid("only letters, digits, '.', '_', '-' and '/'"));
        }
    }
    Ok(())
}

/// A bundle's identity: 64 lowercase hex digits of SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PolicyVersion(String);

/// Why a string is not a [`PolicyVersion`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a policy version is 64 lowercase hex digits")]
pub struct InvalidPolicyVersion;

impl PolicyVersion {
    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for PolicyVersion {
    type Error = InvalidPolicyVersion;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        let well_formed = value.len() == 64
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if well_formed {
            Ok(PolicyVersion(value.to_owned()))
        } else {
            Err(InvalidPolicyVersion)
        }
    }
}

impl TryFrom<String> for PolicyVersion {
    type Error = InvalidPolicyVersion;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        PolicyVersion::try_from(value.as_str())
    }
}

impl FromStr for PolicyVersion {
    type Err = InvalidPolicyVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PolicyVersion::try_from(s)
    }
}

impl From<PolicyVersion> for String {
    fn from(version: PolicyVersion) -> Self {
        version.0
    }
}

impl AsRef<str> for PolicyVersion {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn one(name: &str) -> Result<Bundle, BundleError> {
        Bundle::from_files([(name, "package x")])
    }

    #[test]
    fn names_that_could_escape_or_are_not_rego_are_refused() {
        for bad in [
            "",
            ".rego",
            "/abs.rego",
            "../up.rego",
            "a/../b.rego",
            "./a.rego",
            "a//b.rego",
            "dir/.rego",
            ".hidden.rego",
            "a\\b.rego",
            "data.json",
            "policy.rego.txt",
            "spa ce.rego",
            "nul\0.rego",
        ] {
            assert!(
                matches!(one(bad), Err(BundleError::InvalidName { .. })),
                "{bad:?} was accepted"
            );
        }
        let long = format!("{}.rego", "a".repeat(MAX_NAME_BYTES));
        assert!(matches!(one(&long), Err(BundleError::InvalidName { .. })));
    }

    #[test]
    fn ordinary_names_are_accepted() {
        for good in ["finance.rego", "lib/util.rego", "a-b_c.v2.rego"] {
            assert!(one(good).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn empty_and_oversized_bundles_are_refused() {
        assert_eq!(
            Bundle::from_files(Vec::<(String, String)>::new()),
            Err(BundleError::Empty)
        );
        let big = "#".repeat(MAX_FILE_BYTES + 1);
        assert!(matches!(
            Bundle::from_files([("big.rego", big)]),
            Err(BundleError::FileTooLarge { .. })
        ));
        let many = (0..=MAX_FILES).map(|i| (format!("p{i}.rego"), String::new()));
        assert_eq!(
            Bundle::from_files(many),
            Err(BundleError::TooManyFiles(MAX_FILES + 1))
        );
    }

    #[test]
    fn data_must_be_an_object_and_null_means_none() {
        let b = one("p.rego").unwrap();
        assert_eq!(
            b.clone().with_data(serde_json::json!([1])),
            Err(BundleError::DataNotObject)
        );
        let with_null = b.clone().with_data(Value::Null).unwrap();
        assert_eq!(with_null.version(), b.version());
    }

    #[test]
    fn version_is_sha256_of_the_canonical_form() {
        let b = Bundle::from_files([("p.rego", "package x")]).unwrap();
        assert_eq!(
            std::str::from_utf8(b.canonical_bytes()).unwrap(),
            r#"{"data":null,"files":{"p.rego":"package x"}}"#
        );
        assert_eq!(
            b.version().as_str(),
            hex::encode(Sha256::digest(b.canonical_bytes()))
        );
    }

    #[test]
    fn policy_version_parses_only_lowercase_hex_of_the_right_length() {
        let good = "a".repeat(64);
        assert!(PolicyVersion::try_from(good.as_str()).is_ok());
        for bad in [
            "A".repeat(64),
            "a".repeat(63),
            "g".repeat(64),
            String::new(),
        ] {
            assert!(PolicyVersion::try_from(bad.as_str()).is_err(), "{bad}");
        }
        let v: Result<PolicyVersion, _> = serde_json::from_str("\"abc\"");
        assert!(v.is_err());
    }
}
