//! The `annex` binary: a thin bootstrap over the `annex` library.

/// Charges every allocation to the extension whose code is polled (`quotas.max_memory_bytes`).
#[global_allocator]
static ALLOC: annex_alloc::Accounting = annex_alloc::Accounting;

fn main() -> std::process::ExitCode {
    annex::run()
}
