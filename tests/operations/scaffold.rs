//! `annex extensions new demo && cargo build` gives a binary that serves `/ext/demo/…`. Runs on
//! a copy of the workspace; the build reuses compiled dependencies from this target dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Server;

/// The workspace files a build needs (no target/, no .git, no tests).
const COPY: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "build.rs",
    "rustfmt.toml",
    "core",
    "cmd",
    "extensions",
    "migrations",
    "benches",
    // annex-core pulls its long docs into rustdoc from here.
    "docs",
];

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").to_owned()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A build directory of its own (so it never waits on this test run's lock), seeded once with
/// hard links to this target dir's compiled dependencies so only the workspace crates build.
fn scaffold_target() -> PathBuf {
    let dir = target_dir().join("scaffold-check");
    let debug = dir.join("debug");
    if !debug.exists() {
        std::fs::create_dir_all(&debug).unwrap();
        for sub in ["deps", "build", ".fingerprint"] {
            let from = target_dir().join("debug").join(sub);
            if from.exists() {
                let _ = Command::new("cp").arg("-al").arg(&from).arg(&debug).status();
            }
        }
    }
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scaffolded_extension_builds_into_a_binary_that_serves_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::tempdir().unwrap();
    for entry in COPY {
        run(Command::new("cp").arg("-a").arg(root.join(entry)).arg(copy.path()));
    }
    // Cargo names workspace artifacts by a hash that ignores the workspace's location; another
    // version keeps the copy's artifacts apart from this run's (the hard-linked dependencies in
    // the seeded target dir are only ever read).
    let manifest = copy.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("\nversion = \"", "\nversion = \"0.0.0-scaffold-check+", 1))
        .unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_annex"))
        .args(["extensions", "new", "demo"])
        .current_dir(copy.path()));

    let manifest = std::fs::read_to_string(copy.path().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("\"extensions/custom/demo\""));
    assert!(manifest.contains("annex-ext-demo = { path = \"extensions/custom/demo\", optional = true }"));
    assert!(manifest.contains("ext-demo = [\"dep:annex-ext-demo\"]"));
    for file in
        ["src/lib.rs", "migrations/0001_init.up.sql", "migrations/0001_init.down.sql", "tests/demo.rs"]
    {
        assert!(copy.path().join("extensions/custom/demo").join(file).is_file(), "{file} scaffolded");
    }
    // A second run refuses to overwrite.
    let again = Command::new(env!("CARGO_BIN_EXE_annex"))
        .args(["extensions", "new", "demo"])
        .current_dir(copy.path())
        .output()
        .unwrap();
    assert!(!again.status.success());

    let target = scaffold_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = tokio::task::spawn_blocking({
        let dir = copy.path().to_owned();
        let target = target.clone();
        move || {
            Command::new(cargo)
                .args(["build", "--offline", "--bin", "annex"])
                .current_dir(&dir)
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .expect("cargo runs")
        }
    })
    .await
    .unwrap();
    assert!(build.status.success(), "cargo build failed:\n{}", String::from_utf8_lossy(&build.stderr));

    let url = annex_core::testkit::test_database_url().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut serve = Command::new(target.join("debug/annex"));
    serve
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", &url)
        .env("ANNEX_ADMIN_TOKEN", "t")
        .env("ANNEX_LOG_FORMAT", "json")
        .current_dir(data.path());
    let server = Server::start(serve, data.path());
    let res = reqwest::get(format!("{}/ext/demo/hello", server.url)).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "extension": "demo", "hello": "world" }));
    server.stop();
}
