//! sealgate-policy: Rego bundles in, verdicts out.
//!
//! A [`Bundle`] (validated `.rego` sources plus optional data, identified by a
//! content-hash [`PolicyVersion`]) is compiled once into a [`PreparedPolicy`], which
//! evaluates `data.sealgate.decision` for an input `{"manifest", "screening",
//! "context"}` and returns a [`Verdict`]: approved, denied with reasons, or pending a
//! person's approval. Everything fails closed: an error, an undefined or a malformed
//! decision is a denial that says why. The crate is pure and synchronous: no I/O, no
//! async runtime, no clock beyond regorus's own evaluation time limit.
//!
//! ```
//! use sealgate_policy::{Bundle, Outcome, PreparedPolicy};
//!
//! let bundle = Bundle::from_files([(
//!     "example.rego",
//!     r#"package sealgate
//! import rego.v1
//! decision := {"allow": input.manifest.method == "read", "deny": [], "require_approval": []}
//! "#,
//! )])?;
//! let policy = PreparedPolicy::prepare(&bundle)?;
//! let verdict = policy.evaluate(&serde_json::json!({"manifest": {"method": "read"}}));
//! assert_eq!(verdict.outcome, Outcome::Approve);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bundle;
mod prepared;
mod verdict;
mod worker;

pub use bundle::{
    Bundle, BundleError, InvalidPolicyVersion, PolicyVersion, MAX_BUNDLE_BYTES, MAX_FILES,
    MAX_FILE_BYTES, MAX_NAME_BYTES,
};
pub use prepared::{Backend, Mode, PolicyError, PreparedPolicy, DECISION_RULE, EVAL_TIME_LIMIT};
pub use verdict::{Decision, Outcome, Verdict, MAX_REASONS, MAX_REASON_BYTES, NOT_ALLOWED};
