//! A TOML file as a source of live properties, read at start and again on
//! every change (feature `config-file`).

use super::{Property, Source};
use crate::error::{ConfigError, Validator};
use crate::metrics::TARGET_CONFIG;
use crate::registry::Registry;
use notify::RecursiveMode;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long the file must stay quiet after a change before it is read:
/// an editor's save (write, rename, chmod) is read once.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Live properties from a TOML file: one table per component name, one
/// key per [property](crate::config#properties), applied as
/// [`Source::File`] (below etcd and handles).
///
/// ```toml
/// [RatingsGet]
/// failure_rate = 0.3
/// timeout = "800ms"
///
/// [Bookmarks]
/// force_open = true
/// ```
///
/// The file is read when the watch starts, and again [`DEBOUNCE`] after
/// each change (the folder is watched, so an editor that saves by
/// renaming a new file over it is seen too). Each read is the file's whole
/// say ([`Registry::replace`]): a property deleted from the file goes back
/// to the next layer down (etcd's value, or the built one).
///
/// A bad edit changes nothing of what it breaks: a file that is not TOML
/// (or cannot be read, e.g. while missing) keeps every value of the last
/// good read; a bad property (unknown, wrong type, out of range) keeps its
/// last good value while the others apply. Either way a `warn` event is
/// logged (target `rampart::config`, `event = "property_rejected"` or
/// `"file_rejected"`) and [`FileWatch::errors`] lists what the last read
/// refused.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rampart::config::FileSource;
/// use rampart::registry::Registry;
/// use rampart::timeout::TimeoutLayer;
/// use std::time::Duration;
///
/// let dir = std::env::temp_dir().join(format!("rampart-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("rampart.toml");
/// std::fs::write(&path, "[RatingsGet]\ntimeout = \"800ms\"\n")?;
///
/// let registry = Registry::new();
/// let timeout = TimeoutLayer::builder("RatingsGet").registry(&registry).build()?;
/// let watch = FileSource::watch(&path, &registry)?; // stops when dropped
/// assert_eq!(timeout.timeout(), Duration::from_millis(800));
/// assert!(watch.errors().is_empty());
/// # drop(watch);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FileSource;

impl FileSource {
    /// Reads `path` into `registry` once, and then on every change until
    /// the returned [`FileWatch`] is dropped.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the file cannot be read or is not TOML at
    /// start (nothing is applied), or the folder cannot be watched. Bad
    /// properties do not fail the start: they are in [`FileWatch::errors`].
    pub fn watch(path: impl AsRef<Path>, registry: &Registry) -> Result<FileWatch, ConfigError> {
        let path = path.as_ref().to_path_buf();
        let status = Arc::new(Mutex::new(Status::default()));
        let stamp = Stamp::of(&path);
        let first = FileSource::read(&path, registry)?;
        status_of(&status).record(first, stamp);
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map(ToOwned::to_owned);
        let on_change = {
            let (path, registry, status) = (path.clone(), registry.clone(), status.clone());
            move |events: DebounceEventResult| {
                let ours = match &events {
                    Ok(events) => events.iter().any(|e| e.path.file_name() == name.as_deref()),
                    // The watcher's own trouble: read anyway, to be sure.
                    Err(_) => true,
                };
                // Only a file that changed since the last read is read: on
                // inotify, opening and closing the file to read it are
                // events on it too, and would wake the next read, forever.
                // Looking costs a `stat`, which is no event.
                let stamp = Stamp::of(&path);
                if ours && (stamp.is_none() || stamp != status_of(&status).stamp) {
                    let errors = match FileSource::read(&path, &registry) {
                        Ok(errors) => errors,
                        Err(whole) => vec![whole],
                    };
                    status_of(&status).record(errors, stamp);
                }
            }
        };
        let mut debouncer = new_debouncer(DEBOUNCE, on_change)
            .map_err(|e| file_error(&path, "watch", e.to_string()))?;
        debouncer
            .watcher()
            .watch(&folder, RecursiveMode::NonRecursive)
            .map_err(|e| file_error(&path, "watch", e.to_string()))?;
        Ok(FileWatch {
            path,
            status,
            _debouncer: debouncer,
        })
    }

    /// Reads `path` into `registry` once, as [`Source::File`]'s whole say.
    /// Returns the errors of the properties it refused (the others apply).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the file cannot be read or is not TOML;
    /// nothing changes then.
    pub fn read(
        path: impl AsRef<Path>,
        registry: &Registry,
    ) -> Result<Vec<ConfigError>, ConfigError> {
        let path = path.as_ref();
        let properties = std::fs::read_to_string(path)
            .map_err(|e| file_error(path, "file", format!("cannot be read: {e}")))
            .and_then(|text| parse(path, &text))
            .inspect_err(|e| file_rejected(path, e))?;
        Ok(registry.replace(Source::File, &properties))
    }
}

/// The file's properties, each value as text.
fn parse(path: &Path, text: &str) -> Result<Vec<Property>, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(path, "file", format!("is not TOML: {e}")))?;
    let mut properties = Vec::new();
    for (component, entries) in table {
        let toml::Value::Table(entries) = entries else {
            return Err(file_error(
                path,
                "file",
                format!("{component:?} must be a table of properties ([{component}])"),
            ));
        };
        for (name, value) in entries {
            let value = match value {
                toml::Value::String(s) => s,
                // Numbers and switches as TOML writes them; anything else
                // (an array, a table, a date) is refused by the property's
                // own type check, naming it.
                other => other.to_string(),
            };
            properties.push(Property {
                component: component.clone(),
                name,
                value,
            });
        }
    }
    Ok(properties)
}

fn file_error(path: &Path, field: &'static str, message: String) -> ConfigError {
    let mut v = Validator::new(format!("config file {:?}", path.display().to_string()));
    v.check(false, field, || message);
    v.finish().expect_err("one violation")
}

#[cold]
fn file_rejected(path: &Path, error: &ConfigError) {
    tracing::warn!(
        target: TARGET_CONFIG,
        layer = "config",
        name = %path.display(),
        event = "file_rejected",
        error = %error,
        "config file not applied; the last good values stay"
    );
}

#[derive(Debug, Default)]
struct Status {
    reads: u64,
    errors: Vec<ConfigError>,
    /// The file as it was when last read (`None`: it could not be looked at).
    stamp: Option<Stamp>,
}

impl Status {
    fn record(&mut self, errors: Vec<ConfigError>, stamp: Option<Stamp>) {
        self.reads += 1;
        self.errors = errors;
        self.stamp = stamp;
    }
}

/// What tells one version of the file from another without opening it:
/// its modification time (nanoseconds on the file systems in use), its
/// length, and which file it is (an editor's save renames a new one over
/// it). Taken before a read, so a write during the read is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    file: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let file = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let file = 0;
        Some(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            file,
        })
    }
}

fn status_of(status: &Mutex<Status>) -> std::sync::MutexGuard<'_, Status> {
    status.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A file being watched (see [`FileSource::watch`]); the watch stops when
/// this is dropped. The values it applied stay.
pub struct FileWatch {
    path: PathBuf,
    status: Arc<Mutex<Status>>,
    _debouncer: Debouncer<notify::RecommendedWatcher>,
}

impl FileWatch {
    /// What the last read refused: the whole file (not TOML, unreadable),
    /// or each bad property. Empty when the last read applied everything.
    pub fn errors(&self) -> Vec<ConfigError> {
        status_of(&self.status).errors.clone()
    }

    /// Reads done so far, the first at start included.
    pub fn reads(&self) -> u64 {
        status_of(&self.status).reads
    }

    /// The file watched.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileWatch")
            .field("path", &self.path)
            .field("reads", &self.reads())
            .finish_non_exhaustive()
    }
}
