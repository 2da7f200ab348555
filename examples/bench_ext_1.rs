//! `annex` with one generated extension (`gen_00`), the baseline of the load benchmark's
//! RSS-per-extension row (`bench/load.sh`). Build it without the default extensions:
//!
//! `cargo build --release --no-default-features --example bench_ext_1`

mod support;

support::generated!(0);

fn main() -> std::process::ExitCode {
    annex::run()
}
