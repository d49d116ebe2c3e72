//! The TOML file source, on a real file in a temporary folder: notify's
//! events come in real time, so each wait polls, bounded by a few seconds.

use rampart::circuit_breaker::CircuitBreakerLayer;
use rampart::config::{FileSource, FileWatch, Source};
use rampart::registry::Registry;
use rampart::timeout::TimeoutLayer;
use std::path::Path;
use std::time::{Duration, Instant};

/// Waits (up to 5 s) until `done` holds; panics with `what` if it never does.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not within 5 s: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes the file whole, as an editor's save would (a new file renamed
/// over the old one).
fn save(path: &Path, text: &str) {
    let new = path.with_extension("new");
    std::fs::write(&new, text).unwrap();
    std::fs::rename(&new, path).unwrap();
}

/// Waits for the watch's next read after `reads`.
fn next_read(watch: &FileWatch, reads: u64) {
    eventually("the file is read again", || watch.reads() > reads);
}

#[test]
fn edits_apply_bad_ones_keep_the_last_good_values_and_deleted_ones_fall_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.toml");
    std::fs::write(
        &path,
        "[RatingsGet]\nfailure_rate = 0.3\ntimeout = \"800ms\"\n",
    )
    .unwrap();
    let registry = Registry::new();
    let breaker = CircuitBreakerLayer::builder("RatingsGet")
        .registry(&registry)
        .build()
        .unwrap()
        .handle();
    let timeout = TimeoutLayer::builder("RatingsGet")
        .registry(&registry)
        .build()
        .unwrap();

    let watch = FileSource::watch(&path, &registry).unwrap();
    assert_eq!(breaker.options().failure_rate, Some(0.3), "read at start");
    assert_eq!(timeout.timeout(), Duration::from_millis(800));
    assert!(watch.errors().is_empty());

    // An edit applies.
    let reads = watch.reads();
    save(
        &path,
        "[RatingsGet]\nfailure_rate = 0.4\ntimeout = \"800ms\"\nforce_open = true\n",
    );
    next_read(&watch, reads);
    eventually("the edit applies", || {
        breaker.options().failure_rate == Some(0.4)
    });
    assert_eq!(breaker.state(), rampart::circuit_breaker::State::ForcedOpen);

    // Not TOML: nothing changes, the error is there to see.
    let reads = watch.reads();
    save(&path, "[RatingsGet\nfailure_rate = 0.1\n");
    next_read(&watch, reads);
    let errors = watch.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].to_string().contains("is not TOML"),
        "{}",
        errors[0]
    );
    assert_eq!(breaker.options().failure_rate, Some(0.4));
    assert_eq!(timeout.timeout(), Duration::from_millis(800));

    // A bad value keeps its last good one; the rest applies; a property
    // deleted from the file goes back to its built value.
    let reads = watch.reads();
    save(
        &path,
        "[RatingsGet]\nfailure_rate = 7\ntimeout = \"250ms\"\n",
    );
    next_read(&watch, reads);
    let errors = watch.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].names("failure_rate"), "{}", errors[0]);
    assert_eq!(breaker.options().failure_rate, Some(0.4));
    assert_eq!(timeout.timeout(), Duration::from_millis(250));
    assert_eq!(
        breaker.state(),
        rampart::circuit_breaker::State::Closed,
        "force_open deleted: closed again"
    );

    // A higher layer still wins over the file.
    registry
        .apply(Source::Etcd, "RatingsGet", "timeout", Some("2s"))
        .unwrap();
    assert_eq!(timeout.timeout(), Duration::from_secs(2));

    // Dropped, the watch stops: later edits are not read.
    drop(watch);
    save(&path, "[RatingsGet]\nfailure_rate = 0.6\n");
    std::thread::sleep(rampart::config::DEBOUNCE * 3);
    assert_eq!(breaker.options().failure_rate, Some(0.4));
}

#[test]
fn a_file_that_is_no_toml_at_start_is_an_error_and_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.toml");
    std::fs::write(&path, "failure_rate = 0.3\n").unwrap();
    let registry = Registry::new();
    let err = FileSource::watch(&path, &registry).unwrap_err();
    assert!(err.to_string().contains("must be a table"), "{err}");
    let missing = FileSource::watch(dir.path().join("absent.toml"), &registry).unwrap_err();
    assert!(missing.to_string().contains("cannot be read"), "{missing}");
}

#[test]
fn a_change_is_read_once_and_the_read_itself_wakes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.toml");
    std::fs::write(&path, "[RatingsGet]\ntimeout = \"800ms\"\n").unwrap();
    let registry = Registry::new();
    let timeout = TimeoutLayer::builder("RatingsGet")
        .registry(&registry)
        .build()
        .unwrap();
    let watch = FileSource::watch(&path, &registry).unwrap();
    let settled = |what: &str| {
        // Quiet for five debounce periods: no read wakes another (inotify
        // reports a read's open and close as events on the file too).
        let reads = watch.reads();
        std::thread::sleep(rampart::config::DEBOUNCE * 5);
        assert_eq!(
            watch.reads(),
            reads,
            "{what}: read again with nothing written"
        );
    };
    settled("after the start");

    // Written in place, then saved by renaming: each is read, once.
    for (i, write) in [
        (|p: &Path, t: &str| std::fs::write(p, t).unwrap()) as fn(&Path, &str),
        save,
    ]
    .into_iter()
    .enumerate()
    {
        let reads = watch.reads();
        let ms = 300 + 100 * i as u64;
        write(&path, &format!("[RatingsGet]\ntimeout = \"{ms}ms\"\n"));
        next_read(&watch, reads);
        eventually("the edit applies", || {
            timeout.timeout() == Duration::from_millis(ms)
        });
        settled(if i == 0 {
            "a write in place"
        } else {
            "a save by rename"
        });
    }
}
