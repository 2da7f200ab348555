//! The real `annex` binary: zero-config private PostgreSQL, readiness, graceful shutdown that
//! leaves no PostgreSQL behind, a second process sharing the server, and the CLI.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const ANNEX: &str = env!("CARGO_BIN_EXE_annex");

/// `annex` with a private data dir and no inherited database settings.
fn annex(data_dir: &Path) -> Command {
    let mut cmd = Command::new(ANNEX);
    cmd.current_dir(data_dir)
        .env("ANNEX_DATA_DIR", data_dir.join("data"))
        .env_remove("DATABASE_URL")
        .env_remove("ANNEX_DATABASE_URL")
        .env("ANNEX_LOG", "info");
    cmd
}

/// `annex serve` on a port the kernel picks (no port picked beforehand that another test in this
/// process could take in between), and that port once annex announces it.
fn serve(data_dir: &Path) -> (Child, u16) {
    let mut child = annex(data_dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("annex starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads stderr to its end, so annex never blocks on a full pipe.
    std::thread::spawn(move || {
        const ANNOUNCED: &str = "serving on http://127.0.0.1:";
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find(ANNOUNCED) {
                let digits: String =
                    line[at + ANNOUNCED.len()..].chars().take_while(char::is_ascii_digit).collect();
                let _ = tx.send(digits.parse::<u16>().expect("a port in the announcement"));
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(port) => return (child, port),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("annex closed stderr without announcing its address: {:?}", child.try_wait())
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("annex exited before it announced its address: {status}");
        }
        assert!(Instant::now() < deadline, "annex did not announce its address within 60 s");
    }
}

async fn wait_ready(port: u16, child: &mut Child) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(res) = client.get(format!("http://127.0.0.1:{port}/ready")).send().await
            && res.status() == 200
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("annex exited before it was ready: {status}");
        }
        assert!(Instant::now() < deadline, "annex was not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    kill(pid, Signal::SIGTERM).expect("signal");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "annex did not exit within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("data/postgres/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("annex-bin-").tempdir_in("/tmp").expect("tempdir");
    // The private server may run as the `postgres` user, who must reach the directory.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_config_serve_is_ready_and_sigterm_leaves_no_postgres_behind() {
    let dir = data_dir();
    let (mut child, port) = serve(dir.path());
    wait_ready(port, &mut child).await;

    let pong = reqwest::get(format!("http://127.0.0.1:{port}/ext/hello/ping")).await.expect("ping");
    assert_eq!(pong.status(), 200);
    assert_eq!(pong.text().await.expect("body"), r#"{"pong":true}"#);
    let pg = postmaster_pid(dir.path()).expect("the private PostgreSQL runs");
    assert!(alive(pg));
    let password = std::fs::metadata(dir.path().join("data/postgres.password")).expect("password file");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&password.permissions()) & 0o777, 0o600);

    let status = terminate(&mut child);
    assert!(status.success(), "annex exited with {status}");
    assert!(!alive(pg), "PostgreSQL {pg} still runs after annex exited");
    assert!(postmaster_pid(dir.path()).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_shares_the_running_private_postgres() {
    let dir = data_dir();
    let (mut a, port_a) = serve(dir.path());
    wait_ready(port_a, &mut a).await;
    let pg = postmaster_pid(dir.path()).expect("running");
    let (mut b, port_b) = serve(dir.path());
    wait_ready(port_b, &mut b).await;
    assert_eq!(postmaster_pid(dir.path()), Some(pg), "the second process attached, not restarted");

    assert!(terminate(&mut a).success());
    assert!(alive(pg), "the server stays up while another annex uses it");
    let res = reqwest::get(format!("http://127.0.0.1:{port_b}/ready")).await.expect("ready");
    assert_eq!(res.status(), 200);

    assert!(terminate(&mut b).success());
    assert!(!alive(pg), "the last process out stops the server");
}

#[test]
fn extensions_list_json_works_without_a_server() {
    let dir = data_dir();
    let out = annex(dir.path()).args(["extensions", "list", "--json"]).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let hello = list.as_array().and_then(|a| a.iter().find(|e| e["name"] == "hello")).expect("hello listed");
    assert_eq!(hello["enabled"], true);
    assert_eq!(hello["version"], "0.1.0");
    assert!(postmaster_pid(dir.path()).is_none(), "the CLI stopped the server it started");

    let table = annex(dir.path()).args(["extensions", "list"]).output().expect("runs");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("NAME") && text.contains("hello"), "{text}");
}

#[test]
fn version_and_bad_config_give_clear_output_and_exit_codes() {
    let dir = data_dir();
    let out = annex(dir.path()).arg("--version").output().expect("runs");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("annex {}", env!("CARGO_PKG_VERSION")));

    std::fs::write(dir.path().join("bad.toml"), "[server]\nbnd = 1\n").expect("write");
    let out = annex(dir.path()).args(["--config", "bad.toml", "extensions", "list"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("bnd"), "{err}");

    let out = annex(dir.path()).args(["serve", "--bind", "not-an-address"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on not-an-address"));
}
