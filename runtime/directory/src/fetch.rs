//! Reading a directory's files from a folder or over HTTP(S), with size limits and progress.

use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};

/// Where a directory (or one of its files) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local file or folder.
    Path(PathBuf),
    /// An http(s) URL.
    Url(url::Url),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Path(p) => write!(f, "{}", p.display()),
            Location::Url(u) => write!(f, "{u}"),
        }
    }
}

impl Location {
    /// A directory location from config: `http(s)://…`, `file://…`, or a path.
    pub fn parse(text: &str) -> Result<Location> {
        if text.starts_with("http://") || text.starts_with("https://") {
            let mut url =
                url::Url::parse(text).map_err(|e| Error::Invalid(format!("invalid URL {text:?}: {e}")))?;
            if !url.path().ends_with('/') {
                url.set_path(&format!("{}/", url.path()));
            }
            return Ok(Location::Url(url));
        }
        if let Some(path) = text.strip_prefix("file://") {
            return Ok(Location::Path(PathBuf::from(path)));
        }
        if text.contains("://") {
            return Err(Error::Invalid(format!(
                "unsupported directory URL {text:?}: use http(s):// or a path"
            )));
        }
        Ok(Location::Path(PathBuf::from(text)))
    }

    /// A file relative to this directory location, or an absolute http(s) URL.
    pub fn join(&self, relative: &str) -> Result<Location> {
        if relative.starts_with("http://") || relative.starts_with("https://") {
            return url::Url::parse(relative)
                .map(Location::Url)
                .map_err(|e| Error::Invalid(format!("invalid URL {relative:?}: {e}")));
        }
        match self {
            Location::Path(p) => Ok(Location::Path(p.join(relative))),
            Location::Url(u) => u
                .join(relative)
                .map(Location::Url)
                .map_err(|e| Error::Invalid(format!("invalid URL {relative:?}: {e}"))),
        }
    }
}

/// Progress of one download: `(bytes so far, total when known)`.
pub type Progress<'a> = &'a mut dyn FnMut(u64, Option<u64>);

/// Why a fetch failed.
#[derive(Debug)]
pub enum FetchError {
    /// The server or file could not be reached (connection refused, DNS, file missing).
    Unreachable(String),
    /// The answer was not usable (HTTP error status, body cut, too large).
    Bad(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Unreachable(m) | FetchError::Bad(m) => f.write_str(m),
        }
    }
}

/// Fetches files with one HTTP client.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    /// A fetcher with connect and read timeouts.
    pub fn new() -> Result<Fetcher> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("qiao/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Invalid(format!("failed to build the HTTP client: {e}")))?;
        Ok(Fetcher { client })
    }

    /// The bytes at `location`, refusing more than `limit` bytes. Reports progress.
    pub async fn get(
        &self,
        location: &Location,
        limit: u64,
        progress: Progress<'_>,
    ) -> std::result::Result<Vec<u8>, FetchError> {
        match location {
            Location::Path(path) => {
                let len = std::fs::metadata(path)
                    .map_err(|e| FetchError::Unreachable(format!("{}: {e}", path.display())))?
                    .len();
                if len > limit {
                    return Err(FetchError::Bad(format!("{} is larger than {limit} bytes", path.display())));
                }
                let bytes = std::fs::read(path)
                    .map_err(|e| FetchError::Unreachable(format!("{}: {e}", path.display())))?;
                progress(bytes.len() as u64, Some(len));
                Ok(bytes)
            }
            Location::Url(url) => {
                let mut response = self
                    .client
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|e| FetchError::Unreachable(one_line(&error_chain(&e))))?;
                let status = response.status();
                if !status.is_success() {
                    return Err(FetchError::Bad(format!("{url} answered HTTP {status}")));
                }
                let total = response.content_length();
                if total.is_some_and(|t| t > limit) {
                    return Err(FetchError::Bad(format!("{url} is larger than {limit} bytes")));
                }
                let mut bytes = Vec::with_capacity(total.unwrap_or(0).min(limit) as usize);
                progress(0, total);
                loop {
                    let chunk = response.chunk().await.map_err(|e| {
                        FetchError::Bad(format!(
                            "download of {url} broke off after {} bytes: {}",
                            bytes.len(),
                            one_line(&error_chain(&e))
                        ))
                    })?;
                    let Some(chunk) = chunk else { break };
                    if (bytes.len() + chunk.len()) as u64 > limit {
                        return Err(FetchError::Bad(format!("{url} is larger than {limit} bytes")));
                    }
                    bytes.extend_from_slice(&chunk);
                    progress(bytes.len() as u64, total);
                }
                Ok(bytes)
            }
        }
    }
}

/// An error and its causes on one line (reqwest hides the useful part in `source()`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn joins_relative_urls_and_paths() {
        let base = Location::parse("http://127.0.0.1:8080/dir").unwrap();
        assert_eq!(base.join("index.json").unwrap().to_string(), "http://127.0.0.1:8080/dir/index.json");
        let base = Location::parse("/srv/dir").unwrap();
        assert_eq!(base.join("packages/a.qpkg").unwrap(), Location::Path("/srv/dir/packages/a.qpkg".into()));
        assert!(Location::parse("ftp://x").is_err());
    }
}
