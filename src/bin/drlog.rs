//! drlog: append lines to DIR/current and rotate it; see docs/drlog.md.
fn main() {
    std::process::exit(dmon::logtools::drlog::main());
}
