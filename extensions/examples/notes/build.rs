//! Rebuilds the crate when a file is added to `migrations/` (embedded by `migrations!`).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
