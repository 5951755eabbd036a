//! denv
