//! sealgate-server
