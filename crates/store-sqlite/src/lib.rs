//! sealgate-store-sqlite
