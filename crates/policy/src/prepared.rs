//! A bundle compiled once, evaluated many times.
//!
//! [`PreparedPolicy::prepare`] parses and compiles a [`Bundle`] when it is uploaded, so
//! syntax errors and a missing `data.sealgate.decision` rule surface then, not per
//! request. Evaluation never parses: each thread keeps its own evaluator per bundle
//! version in a small thread-local cache (see `worker`). The fast path is regorus's
//! RVM; the tree-walking interpreter confirms the approvals the RVM reached past an
//! error it absorbed ([`Mode::Confirmed`]), and is the only evaluator when the RVM cannot
//! compile a bundle or disagrees with the interpreter on a probe input. Both fail closed.
//! This module does no I/O and never touches the store, the clock or the network.

use std::sync::Arc;
use std::time::Duration;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::{DeserializationResult, Program};
use regorus::rvm::RegoVM;
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value as RegoValue};
use serde::Deserialize as _;

use crate::bundle::{Bundle, PolicyVersion};
use crate::verdict::{verdict_from, Outcome, Verdict};
use crate::worker;

/// The rule every bundle must define; its value is the decision document.
pub const DECISION_RULE: &str = "data.sealgate.decision";

/// Longest wall-clock time one evaluation may take before it is stopped (and denied).
pub const EVAL_TIME_LIMIT: Duration = Duration::from_secs(1);

/// Most RVM instructions one evaluation may execute (regorus's default is 25 000,
/// too low for real bundles; the time limit is the real guard).
const MAX_INSTRUCTIONS: usize = 10_000_000;

/// Why a bundle could not be prepared. Returned at upload time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A file does not parse; `message` is regorus's, with line and column.
    #[error("{file}: {message}")]
    Parse {
        /// The bundle file that failed.
        file: String,
        /// What regorus said.
        message: String,
    },
    /// No file defines the rule `data.sealgate.decision`.
    #[error("the bundle does not define the rule data.sealgate.decision (package sealgate, rule decision)")]
    MissingDecision,
    /// The sources parse but do not compile together.
    #[error("policy does not compile: {0}")]
    Compile(String),
    /// The data document cannot be loaded next to the rules.
    #[error("bundle data cannot be loaded: {0}")]
    Data(String),
}

/// Which evaluator runs a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// regorus's register VM over a program compiled from the decision rule (fast).
    Rvm,
    /// regorus's tree-walking interpreter (the reference; slower).
    Interpreter,
}

/// How [`PreparedPolicy::evaluate_in`] combines the two evaluators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The RVM decides; an approval or approval request it reached past an error or
    /// conflict it absorbed is evaluated again on the interpreter, whose verdict wins
    /// when they differ. The RVM treats an error inside a rule body as "this body does
    /// not hold" (see policies/README.md), so a deny rule that errors would not deny;
    /// the interpreter fails the evaluation instead. sealgate's copy of regorus counts
    /// what the RVM absorbs (vendor/README.md), so evaluations that absorbed nothing,
    /// the usual case for a policy that guards its types, cost the RVM alone.
    #[default]
    Confirmed,
    /// The RVM alone: errors inside rule bodies make those bodies undefined (OPA's
    /// non-strict semantics), so policies must guard types before using values.
    Rvm,
    /// The interpreter alone.
    Interpreter,
}

/// A bundle ready to evaluate. Cheap to clone and share (`Arc` inside); `Send + Sync`.
#[derive(Clone)]
pub struct PreparedPolicy {
    shared: Arc<Shared>,
}

/// What every thread builds its own evaluator from.
pub(crate) struct Shared {
    pub(crate) version: PolicyVersion,
    backend: Backend,
    rvm_unavailable: Option<String>,
    /// Parsed sources and data, configured; each thread clones its own.
    engine: Engine,
    /// The RVM program in regorus's binary form; each thread deserializes its own copy,
    /// so no two threads share a program's reference counts.
    program: Option<Vec<u8>>,
    /// The data document, converted afresh per thread for the same reason.
    data: serde_json::Value,
}

impl std::fmt::Debug for PreparedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedPolicy")
            .field("version", &self.shared.version)
            .field("backend", &self.shared.backend)
            .finish_non_exhaustive()
    }
}

impl PreparedPolicy {
    /// Parses and compiles `bundle`. Do this once per bundle version.
    pub fn prepare(bundle: &Bundle) -> Result<Self, PolicyError> {
        let mut engine = Engine::new();
        engine.set_strict_builtin_errors(true);
        engine.set_execution_timer_config(timer_config());
        for (file, source) in bundle.files() {
            engine
                .add_policy(file.clone(), source.clone())
                .map_err(|e| PolicyError::Parse {
                    file: file.clone(),
                    message: format!("{e:#}").trim().to_owned(),
                })?;
        }
        let data = bundle
            .data()
            .cloned()
            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
        engine
            .add_data(to_rego(&data).map_err(PolicyError::Data)?)
            .map_err(|e| PolicyError::Data(format!("{e:#}")))?;

        // Entry points must be rules: a package named `sealgate.decision` is refused here.
        let compiled = engine
            .compile_with_entrypoint(&DECISION_RULE.into())
            .map_err(|e| {
                let message = format!("{e:#}");
                if message.contains("not a valid rule path") {
                    PolicyError::MissingDecision
                } else {
                    PolicyError::Compile(message.trim().to_owned())
                }
            })?;

        let (program, rvm_unavailable) = match compile_program(&compiled) {
            Ok(program) => {
                program
                    .check_rule_data_conflicts(&to_rego(&data).map_err(PolicyError::Data)?)
                    .map_err(|e| PolicyError::Data(e.to_string()))?;
                (program.serialize_binary().ok(), None)
            }
            Err(why) => (None, Some(why)),
        };
        let mut shared = Shared {
            version: bundle.version().clone(),
            backend: Backend::Interpreter,
            rvm_unavailable,
            engine,
            program,
            data,
        };
        // The interpreter must work; the RVM is used only if it agrees on a probe.
        let probe = probe_input();
        let reference = worker::Evaluator::new(&shared, Backend::Interpreter)
            .and_then(|mut e| e.evaluate(probe.clone()).value);
        if shared.program.is_some() {
            let fast = worker::Evaluator::new(&shared, Backend::Rvm)
                .and_then(|mut e| e.evaluate(probe).value);
            match (&reference, &fast) {
                (Ok(a), Ok(b)) if a == b => shared.backend = Backend::Rvm,
                (Err(_), Err(_)) => shared.backend = Backend::Rvm,
                _ => {
                    shared.rvm_unavailable = Some(format!(
                        "RVM and interpreter disagree on a probe input ({} vs {})",
                        describe(&fast),
                        describe(&reference)
                    ));
                }
            }
        }
        Ok(PreparedPolicy {
            shared: Arc::new(shared),
        })
    }

    /// The bundle version this policy was prepared from.
    pub fn version(&self) -> &PolicyVersion {
        &self.shared.version
    }

    /// The evaluator [`PreparedPolicy::evaluate`] uses.
    pub fn backend(&self) -> Backend {
        self.shared.backend
    }

    /// Why the RVM is not used, when it is not.
    pub fn rvm_unavailable(&self) -> Option<&str> {
        self.shared.rvm_unavailable.as_deref()
    }

    /// Evaluates `data.sealgate.decision` for `input`
    /// (`{"manifest": ..., "screening": ..., "context": ...}`) in [`Mode::Confirmed`].
    /// Never fails: errors and malformed results are denials whose reason says what
    /// went wrong.
    pub fn evaluate(&self, input: &serde_json::Value) -> Verdict {
        self.evaluate_in(Mode::Confirmed, input)
    }

    /// Evaluates in `mode`.
    pub fn evaluate_in(&self, mode: Mode, input: &serde_json::Value) -> Verdict {
        let input = match to_rego(input) {
            Ok(input) => input,
            Err(e) => return Verdict::policy_error(e),
        };
        match (mode, self.shared.backend) {
            (Mode::Interpreter, _) | (_, Backend::Interpreter) => {
                self.evaluate_rego(Backend::Interpreter, input)
            }
            (Mode::Rvm, Backend::Rvm) => self.evaluate_rego(Backend::Rvm, input),
            (Mode::Confirmed, Backend::Rvm) => {
                // RegoValue clones share their contents: this copies a pointer.
                let (fast, absorbed_errors) = self.evaluate_counted(Backend::Rvm, input.clone());
                if fast.outcome == Outcome::Deny || absorbed_errors == 0 {
                    return fast;
                }
                // An approval, or a request for one, reached past an error or conflict
                // the RVM absorbed: it may have hidden a denial, so the interpreter has
                // the last word.
                let reference = self.evaluate_rego(Backend::Interpreter, input);
                if reference.outcome == fast.outcome {
                    fast
                } else {
                    reference
                }
            }
        }
    }

    /// Evaluates with a chosen backend, to compare them or diagnose one. Asking for the
    /// RVM when it is unavailable for this bundle gives a denial saying so.
    pub fn evaluate_with(&self, backend: Backend, input: &serde_json::Value) -> Verdict {
        match to_rego(input) {
            Ok(input) => self.evaluate_rego(backend, input),
            Err(e) => Verdict::policy_error(e),
        }
    }

    /// How many errors and conflicts the RVM absorbed evaluating `input`, where the
    /// interpreter would have failed (see [`Mode::Confirmed`]); `None` when this bundle
    /// does not run on the RVM or `input` cannot be converted.
    pub fn rvm_absorbed_errors(&self, input: &serde_json::Value) -> Option<usize> {
        if self.shared.backend != Backend::Rvm {
            return None;
        }
        let input = to_rego(input).ok()?;
        Some(worker::evaluate(&self.shared, Backend::Rvm, input).absorbed_errors)
    }

    fn evaluate_rego(&self, backend: Backend, input: RegoValue) -> Verdict {
        self.evaluate_counted(backend, input).0
    }

    /// The verdict, and how many errors and conflicts the evaluator absorbed on the way
    /// (only the RVM does; see [`Mode::Confirmed`]).
    fn evaluate_counted(&self, backend: Backend, input: RegoValue) -> (Verdict, usize) {
        let evaluation = match backend {
            Backend::Rvm => {
                let fast = worker::evaluate(&self.shared, Backend::Rvm, input.clone());
                // The RVM turns errors inside rule bodies into "undefined"; an undefined
                // decision is a denial either way, and the interpreter says why.
                if matches!(fast.value, Ok(RegoValue::Undefined)) {
                    worker::evaluate(&self.shared, Backend::Interpreter, input)
                } else {
                    fast
                }
            }
            Backend::Interpreter => worker::evaluate(&self.shared, Backend::Interpreter, input),
        };
        let verdict = verdict_from(evaluation.value.map_err(|e| summarize(&e)));
        (verdict, evaluation.absorbed_errors)
    }
}

impl Shared {
    pub(crate) fn engine(&self) -> Engine {
        self.engine.clone()
    }

    /// A VM of this thread's own: program deserialized afresh, limits set, data loaded.
    pub(crate) fn vm(&self) -> Result<RegoVM, String> {
        let Some(bytes) = &self.program else {
            return Err(format!(
                "the RVM cannot run this bundle: {}",
                self.rvm_unavailable.as_deref().unwrap_or("no program")
            ));
        };
        let program = match Program::deserialize_binary(bytes)? {
            DeserializationResult::Complete(program) => program,
            DeserializationResult::Partial(_) => {
                return Err("the RVM program did not deserialize completely".to_owned())
            }
        };
        let mut vm = RegoVM::new();
        vm.load_program(Arc::new(program));
        vm.set_strict_builtin_errors(true);
        vm.set_max_instructions(MAX_INSTRUCTIONS);
        vm.set_execution_timer_config(Some(timer_config()));
        vm.set_data(to_rego(&self.data)?)
            .map_err(|e| format!("{e}"))?;
        Ok(vm)
    }
}

/// Compiles the decision rule to an RVM program and checks it round-trips through
/// regorus's binary form, which is how threads get their own copies.
fn compile_program(compiled: &regorus::CompiledPolicy) -> Result<Program, String> {
    let program = Compiler::compile_from_policy(compiled, &[DECISION_RULE])
        .map_err(|e| format!("RVM compiler: {e:#}"))?;
    let bytes = program.serialize_binary()?;
    match Program::deserialize_binary(&bytes)? {
        DeserializationResult::Complete(program) => Ok(program),
        DeserializationResult::Partial(_) => {
            Err("the RVM program does not round-trip through its binary form".to_owned())
        }
    }
}

fn probe_input() -> RegoValue {
    let mut object = RegoValue::new_object();
    if let Ok(map) = object.as_object_mut() {
        for key in ["manifest", "screening", "context"] {
            map.insert(RegoValue::from(key), RegoValue::new_object());
        }
    }
    object
}

fn describe(result: &Result<RegoValue, String>) -> String {
    match result {
        Ok(v) => summarize(&v.to_string()),
        Err(e) => format!("error: {}", summarize(e)),
    }
}

/// One bounded line from a regorus error, which looks like
/// `--> file.rego:4:8 | <source> | ^ error: divide by zero` over several lines:
/// `divide by zero (file.rego:4:8)`.
pub(crate) fn summarize(message: &str) -> String {
    let lines = || message.lines().map(str::trim);
    let error = lines().find_map(|l| l.strip_prefix("error: "));
    let at = lines().find_map(|l| l.strip_prefix("--> "));
    let summary = match (error, at) {
        (Some(error), Some(at)) => format!("{error} ({at})"),
        (Some(error), None) => error.to_owned(),
        _ => lines()
            .find(|l| !l.is_empty())
            .unwrap_or("unknown error")
            .to_owned(),
    };
    summary.chars().take(240).collect()
}

fn timer_config() -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: EVAL_TIME_LIMIT,
        check_interval: std::num::NonZeroU32::MIN.saturating_add(255),
    }
}

/// serde_json -> regorus without a text round trip. Walking the tree by hand is about a
/// third faster than regorus's `Deserialize` impl, and this runs on every request.
fn to_rego(value: &serde_json::Value) -> Result<RegoValue, String> {
    use serde_json::Value as Json;
    Ok(match value {
        Json::Null => RegoValue::Null,
        Json::Bool(b) => RegoValue::Bool(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => RegoValue::from(u),
            (None, Some(i), _) => RegoValue::from(i),
            (None, None, Some(f)) => RegoValue::from(f),
            (None, None, None) => RegoValue::deserialize(value)
                .map_err(|e| format!("input is not representable: {e}"))?,
        },
        Json::String(s) => RegoValue::from(s.as_str()),
        Json::Array(items) => {
            RegoValue::from(items.iter().map(to_rego).collect::<Result<Vec<_>, _>>()?)
        }
        Json::Object(members) => {
            let mut object = RegoValue::new_object();
            let map = object
                .as_object_mut()
                .map_err(|e| format!("input is not representable: {e}"))?;
            for (key, member) in members {
                map.insert(RegoValue::from(key.as_str()), to_rego(member)?);
            }
            object
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn conversion_matches_regorus_deserialize() {
        let value = serde_json::json!({
            "a": [1, -2, 3.5, 1e300, u64::MAX, i64::MIN, null, true, "s"],
            "b": {"nested": {"k": []}, "": {}},
            "é": "ünïcode"
        });
        assert_eq!(
            to_rego(&value).unwrap(),
            RegoValue::deserialize(&value).unwrap()
        );
    }

    #[test]
    fn summarize_picks_the_error_and_its_place() {
        let message =
            "\n--> div.rego:4:8\n  |\n4 | x := 1 / input.z\n  |        ^\nerror: divide by zero";
        assert_eq!(summarize(message), "divide by zero (div.rego:4:8)");
        assert_eq!(summarize("plain failure\nmore"), "plain failure");
        assert_eq!(summarize(""), "unknown error");
    }
}
