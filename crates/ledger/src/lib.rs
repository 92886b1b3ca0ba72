//! sealgate-ledger
