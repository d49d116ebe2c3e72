//! Headless Chromium over the DevTools protocol, for the browser tests
//! (`tests/dashboard_browser.rs`: rampart's dashboard page;
//! `tests/hystrix_dashboard.rs`: Netflix's Hystrix dashboard). Each test
//! includes this file with `#[path = "support/browser.rs"] mod browser;`.
//!
//! # Driving Chromium
//!
//! The dashboards read a stream that never ends, which `chromium
//! --dump-dom` cannot wait for: with `--virtual-time-budget` virtual time
//! stands still while the stream is open (the run hangs), and without it
//! the DOM is dumped at load, before the page has drawn anything. So the
//! tests speak the DevTools protocol over `--remote-debugging-pipe`: JSON
//! messages ended by a NUL byte on the browser's fds 3 and 4, which `sh`
//! hands over from the child's stdin and stdout (no websocket, no extra
//! crate). A test opens its page ([`Browser::open`]), polls the DOM with
//! `Runtime.evaluate` ([`Browser::evaluate`]) until it shows what it must
//! or a deadline passes (then it fails printing what the page showed), and
//! takes a screenshot ([`Browser::screenshot`]). Every DevTools command is
//! answered within [`CDP_LIMIT`] or fails; the browser is killed if the
//! test fails. Uncaught exceptions and console messages are kept
//! ([`Browser::exceptions`], [`Browser::console`]) for the test to judge.
//! A resource a page loads from elsewhere (a CDN the machine cannot reach)
//! can be answered by the test instead, through the protocol's `Fetch`
//! domain ([`Browser::stand_in`]).
//!
//! # Without Chromium
//!
//! The browser is `$RAMPART_CHROMIUM` if set, else the first of
//! `chromium`, `chromium-browser`, `google-chrome` and
//! `google-chrome-stable` on `PATH` ([`find_chromium`]). Whatever a test
//! needs and lacks goes to [`missing`]: with `RAMPART_REQUIRE_BROWSER=1`
//! (as CI sets it) the test fails saying so; otherwise it says it skipped
//! and passes, so a `cargo test` without a browser stays green.

// Not every test reads everything kept here (rampart's page logs nothing
// worth reading).
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::time::{timeout, timeout_at, Instant};

/// Chromium must answer each DevTools command within this.
pub const CDP_LIMIT: Duration = Duration::from_secs(30);

/// The test binary's name, prefixed to what it prints.
const TEST: &str = env!("CARGO_CRATE_NAME");

/// What to do when a test lacks something it needs (`why`, and `fix`: how
/// to get it): fail under `RAMPART_REQUIRE_BROWSER=1`, else say that the
/// test is skipped, on stderr where `cargo test` shows it, and return (the
/// test then returns too).
#[track_caller]
pub fn missing(why: &str, fix: &str) {
    if std::env::var("RAMPART_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("RAMPART_REQUIRE_BROWSER=1 but {why}: {fix}");
    }
    // Straight to stderr: the test harness captures `eprintln!`.
    let _ = writeln!(
        std::io::stderr(),
        "{TEST}: skipped: {why}. To run it: {fix}; RAMPART_REQUIRE_BROWSER=1 makes this a failure."
    );
}

/// Fails the test with `failure` and the end of Chromium's log at `log`.
#[track_caller]
pub fn fail_with_log(failure: &str, log: &Path) -> ! {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    panic!(
        "{failure}\n\nthe end of Chromium's log ({}):\n{}",
        log.display(),
        lines[lines.len().saturating_sub(15)..].join("\n")
    );
}

/// Writes `png` to `artifacts/name` and says where, on stderr.
pub fn keep_screenshot(artifacts: &Path, name: &str, png: &[u8]) -> Result<(), String> {
    let path = artifacts.join(name);
    std::fs::write(&path, png).map_err(|e| format!("writing the screenshot: {e}"))?;
    let _ = writeln!(
        std::io::stderr(),
        "{TEST}: screenshot at {}",
        path.display()
    );
    Ok(())
}

/// The browser to drive, if there is one (see "Without Chromium" above).
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RAMPART_CHROMIUM") {
        return Some(path.into());
    }
    // The browser's DevTools pipe is handed over by `sh`.
    if !cfg!(unix) {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ]
        .iter()
        .map(|name| dir.join(name))
        .find(|candidate| candidate.is_file())
    })
}

/// `target/test-artifacts`, next to the target directory's `tmp`.
pub fn artifacts_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("creating target/test-artifacts");
    dir
}

/// A headless Chromium spoken to over `--remote-debugging-pipe`.
pub struct Browser {
    child: Child,
    to_browser: ChildStdin,
    from_browser: BufReader<ChildStdout>,
    next_id: u64,
    /// Uncaught exceptions the pages reported.
    pub exceptions: Vec<String>,
    /// What the pages wrote to their console (`log: …`, `error: …`).
    pub console: Vec<String>,
    /// Answers given in place of the network (see [`Browser::stand_in`]).
    stand_ins: Vec<StandIn>,
}

/// A resource a page gets from the test instead of from the network.
struct StandIn {
    /// Host and path, without the scheme: `cdn.example/lib.js`.
    url: String,
    content_type: String,
    body: Vec<u8>,
}

/// A tab, by its DevTools session.
pub struct Page {
    session: String,
}

impl Browser {
    /// Starts `binary` headless with a fresh `profile`, its own output to
    /// `log`.
    pub async fn launch(binary: &Path, profile: &Path, log: &Path) -> Result<Browser, String> {
        let log = std::fs::File::create(log).map_err(|e| format!("creating {log:?}: {e}"))?;
        // The pipe is the browser's fds 3 (commands in) and 4 (replies
        // out): `sh` moves the child's stdin and stdout there.
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-sync",
                "--hide-scrollbars",
                "--mute-audio",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let to_browser = child.stdin.take().expect("stdin is piped");
        let from_browser = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut browser = Browser {
            child,
            to_browser,
            from_browser,
            next_id: 0,
            exceptions: Vec::new(),
            console: Vec::new(),
            stand_ins: Vec::new(),
        };
        let version = browser.call(None, "Browser.getVersion", json!({})).await?;
        let _ = writeln!(
            std::io::stderr(),
            "{TEST}: {}",
            version["product"].as_str().unwrap_or("a browser")
        );
        Ok(browser)
    }

    /// Sends one command and waits for its reply, noting the events that
    /// come before it.
    pub async fn call(
        &mut self,
        session: Option<&Page>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + CDP_LIMIT;
        let late = || format!("Chromium did not answer {method} within {CDP_LIMIT:?}");
        let session = session.map(|page| page.session.as_str());
        let id = timeout_at(deadline, self.send(session, method, params))
            .await
            .map_err(|_| late())??;
        loop {
            let mut reply = Vec::new();
            let read = timeout_at(deadline, self.from_browser.read_until(0, &mut reply))
                .await
                .map_err(|_| late())?
                .map_err(|e| format!("reading from Chromium: {e}"))?;
            if read == 0 {
                return Err(format!(
                    "Chromium closed its DevTools pipe while asked {method} (did it exit?)"
                ));
            }
            if reply.last() == Some(&0) {
                reply.pop();
            }
            let mut reply: Value = serde_json::from_slice(&reply)
                .map_err(|e| format!("Chromium sent something that is not JSON: {e}"))?;
            if reply["id"] == id {
                if !reply["error"].is_null() {
                    return Err(format!("{method}: {}", reply["error"]));
                }
                return Ok(reply["result"].take());
            }
            if reply["method"] == "Runtime.exceptionThrown" {
                let details = &reply["params"]["exceptionDetails"];
                self.exceptions.push(format!(
                    "{} {}",
                    details["text"].as_str().unwrap_or(""),
                    details["exception"]["description"]
                        .as_str()
                        .unwrap_or_default()
                ));
            }
            if reply["method"] == "Fetch.requestPaused" {
                timeout_at(deadline, self.answer_in_place(&reply))
                    .await
                    .map_err(|_| late())??;
            }
            if reply["method"] == "Runtime.consoleAPICalled" {
                let params = &reply["params"];
                let args = params["args"].as_array().map_or(Vec::new(), |args| {
                    args.iter()
                        .map(|arg| match &arg["value"] {
                            Value::String(text) => text.clone(),
                            Value::Null => arg["description"].as_str().unwrap_or("").to_owned(),
                            value => value.to_string(),
                        })
                        .collect()
                });
                self.console.push(format!(
                    "{}: {}",
                    params["type"].as_str().unwrap_or("log"),
                    args.join(" ")
                ));
            }
        }
    }

    /// Sends one command without waiting for its reply; its id.
    async fn send(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<u64, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("a JSON value serialises");
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .await
            .map_err(|e| format!("sending {method} to Chromium: {e} (did it exit?)"))?;
        Ok(id)
    }

    /// Pages opened from now on get `body` for `http://url` and
    /// `https://url` (`url` is host and path, `cdn.example/lib.js`)
    /// without going to the network: for a script a page loads from a CDN
    /// that the test machine cannot reach (Chromium upgrades many CDN
    /// hosts to HTTPS, so a local server in the CDN's name would not do).
    pub fn stand_in(&mut self, url: &str, content_type: &str, body: Vec<u8>) {
        self.stand_ins.push(StandIn {
            url: url.to_owned(),
            content_type: content_type.to_owned(),
            body,
        });
    }

    /// Answers a request paused by `Fetch` (only stand-ins' URLs are) with
    /// its stand-in. The reply to the answer is not waited for: `call`
    /// skips replies it did not ask for.
    async fn answer_in_place(&mut self, event: &Value) -> Result<(), String> {
        let params = &event["params"];
        let url = params["request"]["url"].as_str().unwrap_or("");
        let bare = url.split_once("://").map_or(url, |(_, rest)| rest);
        let session = event["sessionId"].as_str().map(str::to_owned);
        let answer = match self.stand_ins.iter().find(|s| s.url == bare) {
            Some(stand_in) => (
                "Fetch.fulfillRequest",
                json!({
                    "requestId": params["requestId"],
                    "responseCode": 200,
                    "responseHeaders": [
                        { "name": "Content-Type", "value": stand_in.content_type },
                        { "name": "Access-Control-Allow-Origin", "value": "*" },
                    ],
                    "body": base64_encode(&stand_in.body),
                }),
            ),
            None => (
                "Fetch.failRequest",
                json!({ "requestId": params["requestId"], "errorReason": "AddressUnreachable" }),
            ),
        };
        self.send(session.as_deref(), answer.0, answer.1).await?;
        Ok(())
    }

    /// Opens `url` in a new tab the size of a laptop screen.
    pub async fn open(&mut self, url: &str) -> Result<Page, String> {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await?;
        let page = Page {
            session: attached["sessionId"]
                .as_str()
                .ok_or("Target.attachToTarget gave no sessionId")?
                .to_owned(),
        };
        // Before navigating, so no exception is missed.
        self.call(Some(&page), "Runtime.enable", json!({})).await?;
        if !self.stand_ins.is_empty() {
            let patterns: Vec<Value> = self
                .stand_ins
                .iter()
                .map(|s| json!({ "urlPattern": format!("*://{}", s.url) }))
                .collect();
            self.call(Some(&page), "Fetch.enable", json!({ "patterns": patterns }))
                .await?;
        }
        self.call(
            Some(&page),
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1440, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await?;
        let navigated = self
            .call(Some(&page), "Page.navigate", json!({ "url": url }))
            .await?;
        if let Some(error) = navigated["errorText"].as_str() {
            return Err(format!("loading {url}: {error}"));
        }
        Ok(page)
    }

    /// The value of a JavaScript expression in the page.
    pub async fn evaluate(&mut self, page: &Page, expression: &str) -> Result<Value, String> {
        let mut result = self
            .call(
                Some(page),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await?;
        if !result["exceptionDetails"].is_null() {
            return Err(format!(
                "evaluating in the page threw: {}",
                result["exceptionDetails"]
            ));
        }
        Ok(result["result"]["value"].take())
    }

    /// The whole page, not just the window, as PNG.
    pub async fn screenshot(&mut self, page: &Page) -> Result<Vec<u8>, String> {
        let metrics = self
            .call(Some(page), "Page.getLayoutMetrics", json!({}))
            .await?;
        let size = &metrics["cssContentSize"];
        let shot = self
            .call(
                Some(page),
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {
                        "x": 0, "y": 0, "scale": 1,
                        "width": size["width"].as_f64().unwrap_or(1440.0),
                        "height": size["height"].as_f64().unwrap_or(900.0),
                    },
                }),
            )
            .await?;
        let png = base64_decode(shot["data"].as_str().ok_or("no screenshot data")?)
            .ok_or("the screenshot is not base64")?;
        if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err("the screenshot is not a PNG".into());
        }
        Ok(png)
    }

    /// Asks the browser to quit, and makes sure it has.
    pub async fn close(mut self) {
        // The reply may never come: the pipe closes as the browser quits.
        let _ = timeout(
            Duration::from_secs(5),
            self.call(None, "Browser.close", json!({})),
        )
        .await;
        if timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Standard base64, as DevTools takes binary data.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, as DevTools sends binary data.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0);
    for byte in text.bytes().filter(|&b| b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
    assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
    assert!(base64_decode("a*b=").is_none());
}

#[test]
fn base64_encodes() {
    assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
    assert_eq!(base64_encode(b"hi"), "aGk=");
    assert_eq!(base64_encode(b"abc"), "YWJj");
    assert_eq!(base64_encode(b""), "");
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes);
}
