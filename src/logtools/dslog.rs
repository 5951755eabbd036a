//! dslog
