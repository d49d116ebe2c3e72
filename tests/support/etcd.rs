//! A real etcd for the tests (Debian's `etcd-server`, 3.4): the shared one
//! `.ci/run` starts (`$RAMPART_ETCD`), or one a test starts itself, on
//! free loopback ports in a temporary directory, to stop and restart.
//!
//! # Without etcd
//!
//! With `RAMPART_REQUIRE_ETCD=1` (as `.ci/run` sets it) a test that cannot
//! have etcd fails saying why; otherwise it says on stderr that it skipped
//! and passes, so a `cargo test` on a machine without etcd stays green
//! while CI cannot pass without running every etcd test.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const TEST: &str = env!("CARGO_CRATE_NAME");

/// Fails under `RAMPART_REQUIRE_ETCD=1`, else says the test is skipped.
#[track_caller]
pub fn missing(why: &str) {
    let fix = "install Debian's etcd-server (`etcd` on PATH), or point RAMPART_ETCD at one";
    if std::env::var("RAMPART_REQUIRE_ETCD").as_deref() == Ok("1") {
        panic!("RAMPART_REQUIRE_ETCD=1 but {why}: {fix}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "{TEST}: skipped: {why}. To run it: {fix}; RAMPART_REQUIRE_ETCD=1 makes this a failure."
    );
}

/// A key prefix no other test (or run) shares.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("/rampart-test/{}-{nanos}/{name}", std::process::id())
}

/// The shared etcd's endpoint, or a private one's (kept alive by the
/// returned guard) when `$RAMPART_ETCD` is unset; `None` (after
/// [`missing`]) when neither can be had.
pub async fn shared() -> Option<(String, Option<Etcd>)> {
    if let Ok(endpoint) = std::env::var("RAMPART_ETCD") {
        return Some((endpoint, None));
    }
    let etcd = Etcd::start().await?;
    Some((etcd.endpoint.clone(), Some(etcd)))
}

/// An etcd of the test's own.
pub struct Etcd {
    pub endpoint: String,
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Etcd {
    /// Starts etcd on two free loopback ports in a new temporary
    /// directory, and waits until it answers; `None` (after [`missing`])
    /// without an `etcd` binary.
    pub async fn start() -> Option<Etcd> {
        let binary = std::env::var("RAMPART_ETCD_BIN").unwrap_or_else(|_| "etcd".to_owned());
        if Command::new(&binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            missing("no `etcd` binary to start");
            return None;
        }
        let (client_port, peer_port) = (free_port(), free_port());
        let dir =
            std::env::temp_dir().join(format!("rampart-etcd-{}-{client_port}", std::process::id()));
        let mut etcd = Etcd {
            endpoint: format!("http://127.0.0.1:{client_port}"),
            client_port,
            peer_port,
            dir,
            child: None,
        };
        etcd.spawn().await;
        Some(etcd)
    }

    /// The same command line as `.ci/run`'s.
    async fn spawn(&mut self) {
        let binary = std::env::var("RAMPART_ETCD_BIN").unwrap_or_else(|_| "etcd".to_owned());
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(binary)
            .args(["--name", "rampart-test", "--data-dir"])
            .arg(&self.dir)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .arg(format!("--initial-cluster=rampart-test={peer}"))
            .args(["--logger=zap", "--log-level=error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut client) =
                etcd_client::Client::connect([self.endpoint.as_str()], None).await
            {
                if client.get("/", None).await.is_ok() {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "etcd at {} did not answer within 20 s",
                self.endpoint
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills etcd (SIGKILL: no goodbye to its clients) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// A client of this etcd.
    pub async fn client(&self) -> etcd_client::Client {
        connect(&self.endpoint).await
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client of the etcd at `endpoint`, with short gRPC keep-alives so a
/// dead etcd is noticed quickly.
pub async fn connect(endpoint: &str) -> etcd_client::Client {
    let options = etcd_client::ConnectOptions::new()
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(1))
        .with_connect_timeout(Duration::from_secs(1));
    etcd_client::Client::connect([endpoint], Some(options))
        .await
        .expect("an etcd client (connecting is lazy)")
}

/// Waits up to `limit` for `ok` to hold of the latest value on `rx`,
/// failing with `what` and the last value seen.
pub async fn wait_for<T: std::fmt::Debug>(
    rx: &mut tokio::sync::watch::Receiver<T>,
    limit: Duration,
    what: &str,
    mut ok: impl FnMut(&T) -> bool,
) {
    let waited = tokio::time::timeout(limit, rx.wait_for(|v| ok(v)))
        .await
        .map(|r| r.is_ok());
    match waited {
        Ok(true) => {}
        Ok(false) => panic!("{what}: the sender is gone"),
        Err(_) => panic!("{what}: not within {limit:?}; last seen {:?}", *rx.borrow()),
    }
}
