//! The dependency cache: built dependency trees, stored as zips of already-deflated entries,
//! keyed by everything that determines their content.
//!
//! A hit is copied into the new package entry by entry without recompressing, so a code-only
//! change costs only the deflate of the app's own files. The local cache is bounded in bytes
//! and evicts the least recently used entry; an optional S3 prefix shares entries between the
//! instances of the fleet, so a fresh instance starts warm.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

/// A local directory of `<key>.zip` files, optionally backed by S3.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    shared: Option<Shared>,
}

/// The S3 location of the shared cache.
#[derive(Debug, Clone)]
pub struct Shared {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
}

/// Where a hit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    Local,
    Shared,
}

/// Builds a cache key from its parts, in order. Each part is length-prefixed so that no two
/// different part lists hash alike.
#[derive(Debug, Default)]
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    pub fn part(mut self, bytes: impl AsRef<[u8]>) -> Self {
        let bytes = bytes.as_ref();
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub fn finish(self) -> String {
        self.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Cache {
    pub fn new(dir: PathBuf, max_bytes: u64, shared: Option<Shared>) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir, max_bytes, shared })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.zip"))
    }

    /// Finds `key` locally, then in the shared cache; a shared hit is kept locally too.
    pub async fn get(&self, key: &str) -> Option<(PathBuf, Hit)> {
        let local = self.path(key);
        if local.is_file() {
            // Touch for LRU: eviction goes by modification time.
            let _ = std::fs::File::options()
                .append(true)
                .open(&local)
                .and_then(|f| f.set_modified(SystemTime::now()));
            return Some((local, Hit::Local));
        }
        let shared = self.shared.as_ref()?;
        let out = shared
            .s3
            .get_object()
            .bucket(&shared.bucket)
            .key(format!("{}{key}.zip", shared.prefix))
            .send()
            .await
            .ok()?;
        let bytes = out.body.collect().await.ok()?.into_bytes();
        let tmp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &bytes).ok()?;
        std::fs::rename(&tmp, &local).ok()?;
        self.evict();
        Some((local, Hit::Shared))
    }

    /// Stores a freshly built dependency zip under `key` (atomically), then evicts down to
    /// the size bound and uploads it to the shared cache. Failures only cost future hits.
    pub async fn put(&self, key: &str, zip: &Path) -> Option<PathBuf> {
        let local = self.path(key);
        let tmp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        if let Err(err) = std::fs::copy(zip, &tmp).and_then(|_| std::fs::rename(&tmp, &local)) {
            tracing::warn!(error = %err, "Cannot store dependencies in the local cache.");
            let _ = std::fs::remove_file(&tmp);
            return None;
        }
        if let Some(shared) = &self.shared {
            let upload = async {
                let body = ByteStream::from_path(&local).await.map_err(|e| e.to_string())?;
                shared
                    .s3
                    .put_object()
                    .bucket(&shared.bucket)
                    .key(format!("{}{key}.zip", shared.prefix))
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| aws_smithy_types::error::display::DisplayErrorContext(e).to_string())
            };
            if let Err(err) = upload.await {
                tracing::warn!(error = %err, "Cannot upload dependencies to the shared cache.");
            }
        }
        self.evict();
        Some(local)
    }

    /// Deletes least recently used entries until the cache fits its bound.
    fn evict(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "zip"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                tracing::debug!(path = %path.display(), "Evicted from the dependency cache.");
                total -= len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_are_unambiguous() {
        let a = KeyBuilder::default().part("ab").part("c").finish();
        let b = KeyBuilder::default().part("a").part("bc").finish();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }

    #[tokio::test]
    async fn evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("c"), 25, None).unwrap();
        let src = dir.path().join("z");
        std::fs::write(&src, [0u8; 10]).unwrap();
        cache.put("a", &src).await.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put("b", &src).await.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(cache.get("a").await.unwrap().1, Hit::Local); // a is now the most recent
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put("c", &src).await.unwrap(); // 30 bytes > 25: evict the LRU, which is b
        assert!(cache.get("b").await.is_none());
        assert!(cache.get("a").await.is_some());
        assert!(cache.get("c").await.is_some());
    }
}
