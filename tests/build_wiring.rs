//! A crate under `extensions/` that is not wired into Cargo.toml fails the build, and the
//! message says exactly what to add. Runs `cargo check` on a copy of the workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The workspace's sources, without target/, data/ or .git.
fn copy_workspace() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(root).expect("read_dir").flatten() {
        let name = entry.file_name();
        if ["target", "data", ".git"].iter().any(|skip| name == *skip) {
            continue;
        }
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &dir.path().join(&name));
        } else {
            std::fs::copy(entry.path(), dir.path().join(&name)).expect("copy");
        }
    }
    // Cargo names workspace artifacts by a hash that ignores where the workspace lives, so the
    // copy would overwrite this run's own libraries in the shared target dir. A different
    // version gives the copy artifacts of its own, while registry dependencies stay shared.
    let manifest = dir.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read manifest");
    let text = text.replacen("\nversion = \"", "\nversion = \"0.0.0-wiring-check+", 1);
    std::fs::write(&manifest, text).expect("write manifest");
    dir
}

/// The target dir of this test run, so dependencies are not built again.
fn target_dir() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_annex"));
    exe.parent().and_then(Path::parent).map(Path::to_owned).expect("target dir")
}

fn cargo_check(workspace: &Path) -> std::process::Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(["build", "--offline", "--quiet", "--lib", "--all-features"])
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo runs")
}

fn add_crate(workspace: &Path, group: &str, dir: &str, package: &str) {
    let root = workspace.join("extensions").join(group).join(dir);
    std::fs::create_dir_all(root.join("src")).expect("mkdir");
    std::fs::write(
        root.join("Cargo.toml"),
        format!("[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n"),
    )
    .expect("write");
    std::fs::write(root.join("src/lib.rs"), "").expect("write");
}

#[test]
fn an_unwired_extension_crate_fails_the_build_saying_how_to_wire_it() {
    let ws = copy_workspace();
    add_crate(ws.path(), "community", "ghost", "annex-ext-ghost");
    add_crate(ws.path(), "examples", "misnamed", "misnamed-ext");
    let out = cargo_check(ws.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the build should fail:\n{stderr}");
    assert!(stderr.contains("extensions/community/ghost is missing from Cargo.toml"), "{stderr}");
    assert!(
        stderr.contains(r#"annex-ext-ghost = { path = "extensions/community/ghost", optional = true }"#),
        "{stderr}"
    );
    assert!(stderr.contains(r#"ext-ghost = ["dep:annex-ext-ghost"]"#), "{stderr}");
    assert!(
        stderr.contains(r#"names its package Some("misnamed-ext"); it must be "annex-ext-misnamed""#),
        "{stderr}"
    );
}
