//! sealgate-policy
