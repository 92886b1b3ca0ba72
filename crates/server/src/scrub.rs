//! Masks secrets and personal data in free text before it reaches a log line
//! (error details, store messages, reasons). One screener, compiled on first use.

use std::sync::OnceLock;

use sealgate_screen::{ScreenConfig, Screener};

static SCRUBBER: OnceLock<Option<Screener>> = OnceLock::new();

/// `text` with every detected secret or PII match replaced by `[type]`. If the
/// screener cannot be built, the text is withheld entirely rather than logged raw.
pub fn scrub(text: &str) -> String {
    match SCRUBBER.get_or_init(|| Screener::new(ScreenConfig::default()).ok()) {
        Some(s) => s.scrub(text),
        None => "[withheld: scrubber unavailable]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_in_error_text_are_masked() {
        let out = super::scrub("connect failed for postgres://app:hunter2@db/x as alice@example.com with AKIAZ7QW3R5T8Y2U4P6M");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains("alice@example.com"), "{out}");
        assert!(!out.contains("AKIAZ7QW3R5T8Y2U4P6M"), "{out}");
    }
}
