//! Where a JWKS comes from: a file, or a URL fetched with a timeout. The only
//! I/O of [`super`]. The current [`KeySet`] is shared; a refresh replaces it
//! and is rate-limited, so that tokens naming random key ids cannot make
//! the server hammer the provider.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use url::{Host, Url};

use super::keys::{KeySet, KeySetError, MAX_JWKS_BYTES};

/// The default shortest time between two refreshes asked for by failed
/// validations (an unknown `kid` or a failed signature).
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// Connect timeout of a JWKS fetch.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request timeout of a JWKS fetch.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A JWKS location: a local file, or an `https://` URL (`http://` only on a
/// loopback address: `127.0.0.0/8` or `[::1]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksLocation {
    File(PathBuf),
    Url(Url),
}

impl JwksLocation {
    /// Reads a setting value: a value with a URL scheme is a URL and must be
    /// `https://` (or `http://` on loopback); anything else is a file path.
    pub fn parse(value: &str) -> Result<JwksLocation, SourceError> {
        if !value.contains("://") {
            return Ok(JwksLocation::File(PathBuf::from(value)));
        }
        let url = Url::parse(value).map_err(|e| SourceError::Location(format!("{value}: {e}")))?;
        match url.scheme() {
            "https" => Ok(JwksLocation::Url(url)),
            "http" if is_loopback(&url) => Ok(JwksLocation::Url(url)),
            "http" => Err(SourceError::Location(format!(
                "{value}: http:// is accepted only on a loopback address (127.0.0.0/8, [::1]); use https://"
            ))),
            other => Err(SourceError::Location(format!("{value}: unsupported scheme {other}"))),
        }
    }
}

/// True when the URL's host is a loopback IP address literal.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        _ => false,
    }
}

/// Why a JWKS could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("invalid JWKS location {0}")]
    Location(String),
    #[error("cannot read the JWKS file {path}: {error}")]
    File {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot fetch the JWKS from {url}: {error}")]
    Fetch { url: Url, error: String },
    #[error("the JWKS at {0} is invalid: {1}")]
    Invalid(String, KeySetError),
}

/// The key set in use and its generation, replaced together.
#[derive(Default)]
struct Current {
    keys: Arc<KeySet>,
    generation: u64,
}

struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// A JWKS location with its current key set. Create with [`JwksSource::load`]
/// (which fails when the first read fails: a realm is not started without
/// keys); ask for [`JwksSource::refresh`] when a validation fails with
/// [`super::JoseError::warrants_refresh`]. Each change of the key set (a
/// key added or removed) starts a new [`JwksSource::generation`], so that
/// what was concluded with the previous keys can be dropped.
pub struct JwksSource {
    location: JwksLocation,
    client: Option<reqwest::Client>,
    current: RwLock<Current>,
    min_refresh_interval_ms: u64,
    /// When the last refresh asked by a validation was let through (ms).
    last_refresh_ms: Mutex<Option<u64>>,
    /// Only one refresh at a time; the others wait for its result.
    refreshing: tokio::sync::Mutex<()>,
    file_stamp: Mutex<Option<FileStamp>>,
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl JwksSource {
    /// A source whose file is read now (an error when it cannot be used:
    /// a realm does not start without its keys); a URL is fetched on first
    /// use, through [`JwksSource::refresh`]. `min_refresh_interval` bounds
    /// how often failed validations may cause a re-read.
    pub fn new(
        location: JwksLocation,
        min_refresh_interval: Duration,
    ) -> Result<JwksSource, SourceError> {
        let client = match &location {
            JwksLocation::File(_) => None,
            JwksLocation::Url(url) => Some(
                reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(REQUEST_TIMEOUT)
                    .pool_idle_timeout(Duration::from_secs(90))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| SourceError::Fetch {
                        url: url.clone(),
                        error: e.to_string(),
                    })?,
            ),
        };
        let source = JwksSource {
            location,
            client,
            current: RwLock::default(),
            min_refresh_interval_ms: min_refresh_interval.as_millis() as u64,
            last_refresh_ms: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            file_stamp: Mutex::new(None),
        };
        if let JwksLocation::File(path) = &source.location {
            let keys = source.read_file(path)?;
            source.install(keys);
        }
        Ok(source)
    }

    /// [`JwksSource::new`], and a URL fetched now too.
    pub async fn load(
        location: JwksLocation,
        min_refresh_interval: Duration,
    ) -> Result<JwksSource, SourceError> {
        let source = JwksSource::new(location, min_refresh_interval)?;
        if matches!(source.location, JwksLocation::Url(_)) {
            let keys = source.read().await?;
            source.install(keys);
        }
        Ok(source)
    }

    /// Where the keys come from.
    pub fn location(&self) -> &JwksLocation {
        &self.location
    }

    /// The current key set.
    pub fn current(&self) -> Arc<KeySet> {
        self.current_with_generation().0
    }

    /// The generation of the current key set: it grows whenever a read
    /// installs keys that differ from the previous ones.
    pub fn generation(&self) -> u64 {
        self.current_with_generation().1
    }

    /// The current key set and its generation, read together.
    pub fn current_with_generation(&self) -> (Arc<KeySet>, u64) {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        (Arc::clone(&current.keys), current.generation)
    }

    /// Re-reads the key set, unless a refresh was let through less than the
    /// minimum interval before `now_ms` (then `Ok(false)`: the caller keeps
    /// its result). `Ok(true)` when a new key set is installed. A failed
    /// read keeps the current key set.
    pub async fn refresh(&self, now_ms: u64) -> Result<bool, SourceError> {
        {
            let mut last = self
                .last_refresh_ms
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(at) = *last {
                if now_ms < at.saturating_add(self.min_refresh_interval_ms) {
                    return Ok(false);
                }
            }
            *last = Some(now_ms);
        }
        let _one = self.refreshing.lock().await;
        let keys = self.read().await?;
        self.install(keys);
        Ok(true)
    }

    /// For a file: re-reads it when its modification time or length changed
    /// since the last read (not rate-limited: a local `stat`). `Ok(true)`
    /// when a new key set is installed. For a URL: `Ok(false)`.
    pub async fn reload_if_changed(&self) -> Result<bool, SourceError> {
        let JwksLocation::File(path) = &self.location else {
            return Ok(false);
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(false);
        };
        let changed = {
            let stamp = self.file_stamp.lock().unwrap_or_else(|e| e.into_inner());
            match &*stamp {
                Some(s) => s.len != meta.len() || s.modified != meta.modified().ok(),
                None => true,
            }
        };
        if !changed {
            return Ok(false);
        }
        let _one = self.refreshing.lock().await;
        let keys = self.read().await?;
        self.install(keys);
        Ok(true)
    }

    /// Installs `keys`, in a new generation unless they are the current
    /// ones again.
    fn install(&self, keys: KeySet) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if *current.keys != keys {
            current.keys = Arc::new(keys);
            current.generation += 1;
        }
    }

    async fn read(&self) -> Result<KeySet, SourceError> {
        match &self.location {
            JwksLocation::File(path) => self.read_file(path),
            JwksLocation::Url(url) => self.fetch(url).await,
        }
    }

    fn read_file(&self, path: &Path) -> Result<KeySet, SourceError> {
        let file_error = |error| SourceError::File {
            path: path.to_path_buf(),
            error,
        };
        let meta = std::fs::metadata(path).map_err(file_error)?;
        if meta.len() > MAX_JWKS_BYTES as u64 {
            return Err(SourceError::Invalid(
                path.display().to_string(),
                KeySetError::TooLarge,
            ));
        }
        let bytes = std::fs::read(path).map_err(file_error)?;
        let keys = KeySet::parse(&bytes)
            .map_err(|e| SourceError::Invalid(path.display().to_string(), e))?;
        *self.file_stamp.lock().unwrap_or_else(|e| e.into_inner()) = Some(FileStamp {
            modified: meta.modified().ok(),
            len: bytes.len() as u64,
        });
        Ok(keys)
    }

    async fn fetch(&self, url: &Url) -> Result<KeySet, SourceError> {
        let fetch_error = |error: String| SourceError::Fetch {
            url: url.clone(),
            error,
        };
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| fetch_error("no HTTP client".into()))?;
        let mut response = client
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fetch_error(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fetch_error(format!("status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fetch_error(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(SourceError::Invalid(url.to_string(), KeySetError::TooLarge));
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::parse(&body).map_err(|e| SourceError::Invalid(url.to_string(), e))
    }
}
