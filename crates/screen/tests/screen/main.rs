//! Integration tests for sealgate-screen: the public API as the server uses
//! it (manifest screening, field paths, scrubbing, redaction, bounded work)
//! and the measured reports on ../shared/testdata when present.

#![allow(clippy::unwrap_used)]

mod data;
mod limits;
mod manifest;
mod redaction;

use sealgate_screen::{ScreenConfig, Screener};

pub(crate) fn screener() -> Screener {
    Screener::new(ScreenConfig::default()).unwrap()
}
