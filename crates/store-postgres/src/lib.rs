//! sealgate-store-postgres
