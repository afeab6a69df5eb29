//! On-disk cache of compiled components.
//!
//! A compiled artifact is keyed by the sha256 of the component bytes and a digest of the
//! engine's compatibility hash (wasmtime version and every setting that affects code
//! generation), so a runtime never loads an artifact compiled for another configuration. Only
//! artifacts this host wrote into its own cache directory are ever deserialized; a plugin
//! author cannot ship one. An artifact wasmtime rejects (truncated file, other version) is
//! recompiled and replaced.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

/// Feeds `Hash` output into sha256 so the key is stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    /// A cache in `dir`, created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(CompileCache { dir })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact for a component with this sha256 lives for `engine`.
    pub fn artifact_path(&self, engine: &Engine, wasm_sha256: &str) -> PathBuf {
        let mut h = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = hex::encode(&h.0.finalize()[..8]);
        self.dir.join(format!("{wasm_sha256}-{engine_key}.cwasm"))
    }

    /// Loads the compiled component, compiling and storing it when the cache has no usable
    /// artifact. Returns the component and whether it came from the cache.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &str,
    ) -> Result<(Component, bool), wasmtime::Error> {
        let path = self.artifact_path(engine, wasm_sha256);
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cached compiled connector rejected; recompiling");
                }
            }
        }
        let artifact = engine.precompile_component(wasm)?;
        if let Err(e) = self.store(&path, &artifact) {
            tracing::warn!(path = %path.display(), error = %e, "failed to write compiled connector to the cache");
        }
        #[allow(unsafe_code)]
        // SAFETY: `artifact` was produced just now by `precompile_component` of this engine.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        Ok((component, false))
    }

    /// Writes atomically: a reader sees the old file, no file, or the whole new file.
    fn store(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(artifact)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

fn deserialize(engine: &Engine, path: &Path) -> Result<Component, wasmtime::Error> {
    // Read into memory rather than `deserialize_file`'s mmap: a cache file truncated while
    // mapped (another process, an operator cleaning up) would otherwise kill the host with
    // SIGBUS. The copy costs a fraction of a millisecond.
    let bytes = std::fs::read(path)?;
    match Engine::detect_precompiled(&bytes) {
        Some(wasmtime::Precompiled::Component) => {}
        _ => return Err(wasmtime::Error::msg("not a precompiled component")),
    }
    #[allow(unsafe_code)]
    // SAFETY: files in the cache directory are written only by `store` above from this host's
    // own `precompile_component` output; wasmtime checks version and configuration compatibility
    // and rejects mismatches with an error, which the caller handles by recompiling.
    unsafe {
        Component::deserialize(engine, &bytes)
    }
}
