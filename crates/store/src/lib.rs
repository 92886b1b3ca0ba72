//! sealgate-store
