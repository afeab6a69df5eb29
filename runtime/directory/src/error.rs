//! The one error type: every refusal names the problem and the thing refused.

/// Why a package, index or install was refused, or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("failed to {what}: {cause}")]
    Io {
        /// What was being done (`read key.pub`).
        what: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// Malformed input: a key file, manifest, package, index, lock or config.
    #[error("{0}")]
    Invalid(String),
    /// A key could not be used (wrong password, encrypted without a password).
    #[error("{0}")]
    Key(String),
    /// The directory could not be reached.
    #[error("directory {directory:?} is unreachable at {url}: {message}")]
    Unreachable {
        /// The directory's configured name.
        directory: String,
        /// What was fetched.
        url: String,
        /// The transport's message.
        message: String,
    },
    /// The index signature does not verify against the trusted directory key.
    #[error("the index of directory {directory:?} is not signed by its trusted key: {message}")]
    IndexSignature {
        /// The directory's configured name.
        directory: String,
        /// Why.
        message: String,
    },
    /// The index expired (a stale or frozen mirror).
    #[error(
        "the index of directory {directory:?} expired at {expires}; the directory must re-sign it (`qiao directory build`)"
    )]
    IndexExpired {
        /// The directory's configured name.
        directory: String,
        /// When it expired.
        expires: String,
    },
    /// The index is older than one seen before (a rollback attack or a stale mirror).
    #[error(
        "the index of directory {directory:?} has serial {serial}, lower than serial {seen} seen before: refusing a rolled-back index"
    )]
    Rollback {
        /// The directory's configured name.
        directory: String,
        /// The serial offered.
        serial: u64,
        /// The highest serial seen.
        seen: u64,
    },
    /// Nothing matches the request.
    #[error("{0}")]
    NotFound(String),
    /// The only matching version is yanked.
    #[error("{id} {version} is yanked{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Yanked {
        /// The connector.
        id: String,
        /// The version.
        version: String,
        /// The publisher's reason.
        reason: Option<String>,
    },
    /// The download is shorter or longer than the index says.
    #[error("download of {id} {version} is {got} bytes where the index says {expected}: {}", if got < expected { "truncated download" } else { "more data than announced" })]
    Size {
        /// The connector.
        id: String,
        /// The version.
        version: String,
        /// Size in the index.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// The download's sha256 differs from the index.
    #[error("sha256 of {id} {version} is {got} but the index says {expected}: digest mismatch")]
    Digest {
        /// The connector.
        id: String,
        /// The version.
        version: String,
        /// sha256 in the index.
        expected: String,
        /// sha256 of the bytes.
        got: String,
    },
    /// The package was signed by a key its publisher does not list.
    #[error(
        "{id} {version} is signed by key {key_id}, which is not a key of publisher {publisher:?}: unknown publisher key"
    )]
    UnknownKey {
        /// The connector.
        id: String,
        /// The version.
        version: String,
        /// The publisher named by the index.
        publisher: String,
        /// The signature's key id.
        key_id: String,
    },
    /// The publisher signature does not verify.
    #[error("publisher signature of {id} {version} does not verify: {message}")]
    Signature {
        /// The connector.
        id: String,
        /// The version.
        version: String,
        /// Why.
        message: String,
    },
    /// The component was built against a WIT version this runtime cannot load.
    #[error(
        "{id} {version} is built against WIT qiao:connector@{wit}, which this runtime (qiao:connector@{host}) cannot load: incompatible WIT version"
    )]
    Wit {
        /// The connector.
        id: String,
        /// The version.
        version: String,
        /// The component's WIT version.
        wit: String,
        /// The host's.
        host: String,
    },
    /// The package needs another runtime version.
    #[error("{id} {version} needs qiao {range}; this is qiao {runtime}")]
    Runtime {
        /// The connector.
        id: String,
        /// The version.
        version: String,
        /// The package's range.
        range: String,
        /// This runtime.
        runtime: String,
    },
    /// The manifest requests capabilities the component does not declare.
    #[error("{id} {version}: the manifest requests {what} that the component does not declare")]
    Capabilities {
        /// The connector.
        id: String,
        /// The version.
        version: String,
        /// What (`host "evil.example"`).
        what: String,
    },
    /// Two descriptions of one package disagree (manifest, index, component).
    #[error("{id} {version}: {message}")]
    Mismatch {
        /// The connector.
        id: String,
        /// The version.
        version: String,
        /// What disagrees.
        message: String,
    },
    /// A version a flow set needs cannot be removed.
    #[error("{id} {version} is pinned by {}; re-lock those flows or pass --force", locks.join(", "))]
    InUse {
        /// The connector.
        id: String,
        /// The version.
        version: String,
        /// Lock files pinning it.
        locks: Vec<String>,
    },
}

impl Error {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, cause: std::io::Error) -> Self {
        Error::Io { what: what.into(), cause }
    }
}
