//! Per-thread evaluators.
//!
//! regorus evaluators are mutable and scale badly when threads share one program, so
//! every thread builds its own evaluator the first time it sees a bundle version and
//! keeps the few most recent ones in a thread-local cache. An evaluator is taken out of
//! the cache while it runs and put back only if it finished without panicking, so a
//! panic inside regorus can never leave a half-updated evaluator behind. This module
//! owns that cache and nothing else.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use regorus::rvm::RegoVM;
use regorus::{Engine, Value as RegoValue};

use crate::bundle::PolicyVersion;
use crate::prepared::{Backend, Shared, DECISION_RULE};

/// How many (version, backend) evaluators one thread keeps. A new bundle version
/// evicts the least recently used one.
const CACHED_PER_THREAD: usize = 4;

thread_local! {
    static CACHE: RefCell<Vec<Cached>> = const { RefCell::new(Vec::new()) };
}

struct Cached {
    version: PolicyVersion,
    backend: Backend,
    evaluator: Evaluator,
}

/// One thread's evaluator for one bundle version.
pub(crate) enum Evaluator {
    Rvm(Box<RegoVM>),
    Interpreter(Box<Engine>),
}

impl Evaluator {
    pub(crate) fn new(shared: &Shared, backend: Backend) -> Result<Self, String> {
        Ok(match backend {
            Backend::Rvm => Evaluator::Rvm(Box::new(shared.vm()?)),
            Backend::Interpreter => Evaluator::Interpreter(Box::new(shared.engine())),
        })
    }

    /// The raw value of the decision rule for `input`.
    pub(crate) fn evaluate(&mut self, input: RegoValue) -> Evaluation {
        match self {
            Evaluator::Rvm(vm) => {
                vm.set_input(input);
                let value = vm.execute().map_err(|e| e.to_string());
                Evaluation {
                    value,
                    absorbed_errors: vm.absorbed_errors(),
                }
            }
            Evaluator::Interpreter(engine) => {
                engine.set_input(input);
                Evaluation {
                    value: engine
                        .eval_rule(DECISION_RULE.to_owned())
                        .map_err(|e| format!("{e:#}")),
                    // In strict mode the interpreter fails instead.
                    absorbed_errors: 0,
                }
            }
        }
    }
}

/// What one evaluation gave.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Evaluation {
    /// The decision rule's value, or why there is none.
    pub(crate) value: Result<RegoValue, String>,
    /// Errors and conflicts the RVM absorbed where the interpreter would have failed
    /// (vendor/README.md); always 0 for the interpreter.
    pub(crate) absorbed_errors: usize,
}

/// Evaluates with this thread's evaluator for (`shared.version`, `backend`), building it
/// on first use.
pub(crate) fn evaluate(shared: &Shared, backend: Backend, input: RegoValue) -> Evaluation {
    let mut evaluator = match take(&shared.version, backend) {
        Some(evaluator) => evaluator,
        None => match Evaluator::new(shared, backend) {
            Ok(evaluator) => evaluator,
            Err(e) => return Evaluation::failed(e),
        },
    };
    match catch_unwind(AssertUnwindSafe(|| evaluator.evaluate(input))) {
        Ok(evaluation) => {
            put(shared.version.clone(), backend, evaluator);
            evaluation
        }
        Err(_) => Evaluation::failed("the policy evaluator panicked".to_owned()),
    }
}

impl Evaluation {
    fn failed(why: String) -> Self {
        Evaluation {
            value: Err(why),
            absorbed_errors: 0,
        }
    }
}

fn take(version: &PolicyVersion, backend: Backend) -> Option<Evaluator> {
    CACHE
        .try_with(|cache| {
            let mut cache = cache.borrow_mut();
            let at = cache
                .iter()
                .position(|c| c.backend == backend && &c.version == version)?;
            Some(cache.remove(at).evaluator)
        })
        .ok()
        .flatten()
}

fn put(version: PolicyVersion, backend: Backend, evaluator: Evaluator) {
    // During thread teardown the cache may be gone; the evaluator is then just dropped.
    let _ = CACHE.try_with(|cache| {
        let mut cache = cache.borrow_mut();
        cache.insert(
            0,
            Cached {
                version,
                backend,
                evaluator,
            },
        );
        cache.truncate(CACHED_PER_THREAD);
    });
}
