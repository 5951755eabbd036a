//! Links dmon's programs as position-dependent executables. Their code is
//! position-independent as usual, but the linker then fills in every address
//! itself, so the loader relocates nothing: the pages of `.data.rel.ro` and the
//! GOT stay clean, shared with every other dmon, instead of 32 KiB written in
//! each (docs/benchmarks.md, "Memory per service"). RELRO and immediate binding
//! stay; the price is that dmon's own code and data sit at fixed addresses
//! (libraries, heap and stack are still placed at random).
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
