//! The `annex` binary: a thin bootstrap over the `annex` library.

fn main() -> std::process::ExitCode {
    annex::run()
}
