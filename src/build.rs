//! Links dmon's programs as position-dependent executables. Their code is
//! position-independent as usual, but the linker then fills in every address
//! itself, so the loader relocates nothing: the pages of `.data.rel.ro` and the
//! GOT stay clean, shared with every other dmon, instead of 32 KiB written in
//! each (docs/benchmarks.md, "Memory per service"). RELRO and immediate binding
//! stay; the price is that dmon's own code and data sit at fixed addresses
//! (libraries, heap and stack are still placed at random).
//!
//! The unwinder (`_Unwind_*`, which std's backtraces call) comes from gcc's
//! static `libgcc_eh` instead of `libgcc_s.so`: linked before std asks for
//! `-lgcc_s`, it leaves that library unneeded (`--as-needed`), and a library
//! less to load is one less set of relocated pages in every dmon.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu") {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}
