//! sealgate-screen
