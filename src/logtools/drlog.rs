//! drlog
