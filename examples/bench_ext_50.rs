//! `annex` with 50 generated extensions (`gen_00` … `gen_49`), for the load benchmark's RSS and
//! start-up rows (`bench/load.sh`). Build it without the default extensions:
//!
//! `cargo build --release --no-default-features --example bench_ext_50`

mod support;

support::generated!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24
    25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49
);

fn main() -> std::process::ExitCode {
    annex::run()
}
