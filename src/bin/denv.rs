//! denv: run a command in an environment built from scratch; see docs/denv.md.
fn main() {
    std::process::exit(dmon::logtools::denv::main());
}
