//! The application's operations, one module per area. Handlers call exactly one
//! function here; these functions know nothing of HTTP beyond returning `ApiError`.

pub mod approvals;
pub mod audit;
pub mod decide;
pub mod integrity;
pub mod keys;
pub mod ledger;
pub mod policies;
pub mod seals;

use sealgate_core::timefmt;

use crate::state::AppState;

/// The current time in the ledger's fixed format.
pub(crate) fn now_str(state: &AppState) -> String {
    timefmt::format(state.now())
}

/// A time-ordered unique id (UUIDv7), so ids sort by creation.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
