//! sealgate-core
