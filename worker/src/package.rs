//! The deployment zip: deterministic, so that the same app always gives the same CodeSha256.
//!
//! Entries are sorted by path, every timestamp is 1980-01-01 00:00, permissions are normalised
//! (0755 for executables and `bootstrap`, 0644 for everything else), directories are implied
//! by file paths, and symlinks stay symlinks. Nothing from the build host leaks in.
//!
//! Built dependencies arrive as a zip written by this same function; their entries are copied
//! into the package raw, without being inflated and deflated again, merged in name order with
//! the app's own files. Where both have a file of the same name, the built dependency's is kept.
//!
//! Lambda refuses functions over 250 MB unzipped; that is checked here, before anything is
//! written, and the error names the largest directories so the uploader knows what to trim.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// Deflate level used for every entry: zlib's default, the same level SAM CLI and `zip -6` use.
pub const DEFLATE_LEVEL: i64 = 6;

/// Files at least this large are streamed into the package rather than compressed ahead.
pub const LARGE_ENTRY_BYTES: u64 = 8 * 1024 * 1024;

/// Lambda's limit on a function's unzipped size (250 MB).
pub const MAX_UNZIPPED_BYTES: u64 = 250 * 1024 * 1024;

/// A finished deployment package on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub path: PathBuf,
    /// Base64 of the SHA-256 of the zip: what Lambda reports as `CodeSha256`.
    pub code_sha256: String,
    pub size: u64,
    pub entries: usize,
    pub unzipped_bytes: u64,
}

/// Why a package could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("cannot read `{path}` while packaging: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the package: {0}")]
    Write(#[source] std::io::Error),
    #[error("cannot write the package: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("path `{0}` is not UTF-8 and cannot go into a Lambda package")]
    NotUtf8(String),
    #[error("the function would be {bytes} bytes unzipped; Lambda allows {limit}. Largest directories: {largest}")]
    TooLarge { bytes: u64, limit: u64, largest: String },
}

#[derive(Debug)]
enum Kind {
    File {
        executable: bool,
    },
    Symlink(String),
    /// Entry `n` of the dependency zip, copied without recompressing.
    Raw(usize),
}

#[derive(Debug)]
struct Entry {
    name: String,
    path: PathBuf,
    kind: Kind,
    /// Uncompressed size.
    size: u64,
}

/// Zips the tree under `root` into `out`.
pub fn build(root: &Path, out: &Path) -> Result<Package, PackageError> {
    build_with_deps(root, None, out)
}

/// Zips the tree under `root`, merged with the entries of the dependency zip `deps`, into `out`.
pub fn build_with_deps(root: &Path, deps: Option<&Path>, out: &Path) -> Result<Package, PackageError> {
    build_limited(root, deps, out, MAX_UNZIPPED_BYTES)
}

fn build_limited(root: &Path, deps: Option<&Path>, out: &Path, limit: u64) -> Result<Package, PackageError> {
    let mut entries = collect(root)?;
    let mut deps_archive = match deps {
        Some(path) => {
            let file = std::fs::File::open(path).map_err(|source| PackageError::Read {
                path: path.display().to_string(),
                source,
            })?;
            Some(zip::ZipArchive::new(std::io::BufReader::new(file))?)
        }
        None => None,
    };
    if let Some(archive) = &mut deps_archive {
        let mut dep_entries = BTreeMap::new();
        for i in 0..archive.len() {
            let entry = archive.by_index_raw(i)?;
            let name = std::str::from_utf8(entry.name_raw())
                .map_err(|_| PackageError::NotUtf8(String::from_utf8_lossy(entry.name_raw()).into_owned()))?
                .to_owned();
            dep_entries.insert(name, (i, entry.size()));
        }
        entries.retain(|e| !dep_entries.contains_key(&e.name));
        entries.extend(dep_entries.into_iter().map(|(name, (i, size))| Entry {
            name,
            path: PathBuf::new(),
            kind: Kind::Raw(i),
            size,
        }));
        entries.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let unzipped_bytes: u64 = entries.iter().map(|e| e.size).sum();
    if unzipped_bytes > limit {
        return Err(PackageError::TooLarge {
            bytes: unzipped_bytes,
            limit,
            largest: largest_dirs(&entries),
        });
    }

    let file = std::fs::File::create(out).map_err(PackageError::Write)?;
    let mut zip = ZipWriter::new(std::io::BufWriter::new(file));
    write_entries(&mut zip, &entries, deps_archive.as_mut())?;
    let mut writer = zip.finish()?;
    writer.flush().map_err(PackageError::Write)?;
    let mut file = writer.into_inner().map_err(|e| PackageError::Write(e.into_error()))?;
    // No fsync: the package is a scratch file of this job; after a crash the job runs again.
    let size = file.stream_position().map_err(PackageError::Write)?;
    Ok(Package {
        path: out.to_owned(),
        code_sha256: sha256_base64(out)?,
        size,
        entries: entries.len(),
        unzipped_bytes,
    })
}

/// Files are read, and fed to deflate, in chunks of this size. Deflate's output depends on how
/// its input is chunked, so every path uses the same size: changing it changes CodeSha256.
const COPY_BUFFER_BYTES: usize = 256 * 1024;

/// Compressed entries waiting to be written may hold at most this many bytes between them.
const AHEAD_BUDGET_BYTES: usize = 16 * 1024 * 1024;

/// Writes `entries` into `zip` in order. Small files are deflated ahead on every core, each into
/// a one-entry zip in memory whose compressed entry is then copied raw, so the bytes are exactly
/// those of compressing in order on one thread. Large files are streamed in place, so memory
/// stays bounded by [`AHEAD_BUDGET_BYTES`] plus one small file per core whatever the app's size.
fn write_entries<W: Write + Seek>(
    zip: &mut ZipWriter<W>,
    entries: &[Entry],
    mut deps: Option<&mut zip::ZipArchive<std::io::BufReader<std::fs::File>>>,
) -> Result<(), PackageError> {
    let ahead = Ahead::default();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| ahead.work(entries, &next, &mut vec![0u8; COPY_BUFFER_BYTES]));
        }
        let written = (|| {
            let mut buf = vec![0u8; COPY_BUFFER_BYTES];
            for (i, entry) in entries.iter().enumerate() {
                let name = entry.name.as_str();
                match &entry.kind {
                    Kind::Raw(index) => {
                        let archive = deps.as_deref_mut().expect("raw entries come from the deps archive");
                        zip.raw_copy_file(archive.by_index_raw(*index)?)?;
                    }
                    Kind::Symlink(target) => {
                        zip.add_symlink(name, target.as_str(), file_options(0o777, 0))?;
                    }
                    Kind::File { .. } if compressed_ahead(entry) => {
                        let one = ahead.take(i)?;
                        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(one))?;
                        zip.raw_copy_file(archive.by_index_raw(0)?)?;
                    }
                    Kind::File { .. } => {
                        zip.start_file(name, file_options(mode(entry), entry.size))?;
                        copy_file(entry, zip, &mut buf)?;
                    }
                }
                ahead.written(i + 1);
            }
            Ok(())
        })();
        ahead.stop();
        written
    })
}

fn compressed_ahead(entry: &Entry) -> bool {
    matches!(entry.kind, Kind::File { .. }) && entry.size < LARGE_ENTRY_BYTES
}

fn mode(entry: &Entry) -> u32 {
    match entry.kind {
        Kind::File { executable: true } => 0o755,
        _ if entry.name == "bootstrap" => 0o755,
        _ => 0o644,
    }
}

/// The same options for every entry, so that an entry compressed ahead and one streamed in
/// place are written alike. Large entries need ZIP64 headers; decided per entry, so small
/// packages stay classic.
fn file_options(mode: u32, size: u64) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(DEFLATE_LEVEL))
        .last_modified_time(DateTime::default())
        .unix_permissions(mode)
        .large_file(size >= u64::from(u32::MAX))
}

fn copy_file(entry: &Entry, out: &mut impl Write, buf: &mut [u8]) -> Result<(), PackageError> {
    let read_error = |source| PackageError::Read {
        path: entry.name.clone(),
        source,
    };
    let mut src = std::fs::File::open(&entry.path).map_err(read_error)?;
    loop {
        let n = src.read(buf).map_err(read_error)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n]).map_err(PackageError::Write)?;
    }
}

/// Compresses one file into a one-entry zip in memory.
fn compress(entry: &Entry, buf: &mut [u8]) -> Result<Vec<u8>, PackageError> {
    let mut one = ZipWriter::new(std::io::Cursor::new(Vec::with_capacity(entry.size as usize / 2 + 256)));
    one.start_file(entry.name.as_str(), file_options(mode(entry), entry.size))?;
    copy_file(entry, &mut one, buf)?;
    Ok(one.finish()?.into_inner())
}

/// The small files compressed ahead of the writer, by index, and how far the writer has got.
#[derive(Default)]
struct Ahead {
    state: Mutex<AheadState>,
    changed: Condvar,
}

#[derive(Default)]
struct AheadState {
    done: BTreeMap<usize, Result<Vec<u8>, PackageError>>,
    bytes: usize,
    written: usize,
    stopped: bool,
}

impl Ahead {
    /// One compressing thread: claims entries in order and compresses the small files among
    /// them. A claim beyond the budget waits for the writer, except the one the writer needs
    /// next, so the writer always makes progress.
    fn work(&self, entries: &[Entry], next: &AtomicUsize, buf: &mut [u8]) {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(entry) = entries.get(i) else { return };
            if !compressed_ahead(entry) {
                continue;
            }
            {
                let mut state = self.lock();
                while !state.stopped && state.bytes >= AHEAD_BUDGET_BYTES && state.written < i {
                    state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
                if state.stopped {
                    return;
                }
            }
            let result = compress(entry, buf);
            let mut state = self.lock();
            state.bytes += result.as_ref().map_or(0, Vec::len);
            state.done.insert(i, result);
            self.changed.notify_all();
        }
    }

    /// Waits for entry `i` and hands it to the writer.
    fn take(&self, i: usize) -> Result<Vec<u8>, PackageError> {
        let mut state = self.lock();
        loop {
            if let Some(result) = state.done.remove(&i) {
                state.bytes -= result.as_ref().map_or(0, Vec::len);
                return result;
            }
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn written(&self, upto: usize) {
        self.lock().written = upto;
        self.changed.notify_all();
    }

    /// Lets every compressing thread go, whether or not the package was finished.
    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, AheadState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The five largest directories (two levels deep) by unzipped size, e.g. `numpy/core 61.2 MB`.
fn largest_dirs(entries: &[Entry]) -> String {
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for e in entries {
        let parts: Vec<&str> = e.name.split('/').collect();
        let dir = if parts.len() > 1 {
            parts[..parts.len() - 1]
                .iter()
                .take(2)
                .copied()
                .collect::<Vec<_>>()
                .join("/")
        } else {
            ".".to_owned()
        };
        *sizes.entry(dir).or_default() += e.size;
    }
    let mut sizes: Vec<_> = sizes.into_iter().collect();
    sizes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    sizes
        .iter()
        .take(5)
        .map(|(d, s)| format!("{d} {:.1} MB", *s as f64 / 1e6))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lists every file and symlink under `root`, sorted by their zip names.
fn collect(root: &Path) -> Result<Vec<Entry>, PackageError> {
    let mut entries = Vec::new();
    for item in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let item = item.map_err(|e| PackageError::Read {
            path: e.path().map(|p| p.display().to_string()).unwrap_or_default(),
            source: e.into(),
        })?;
        let relative = item
            .path()
            .strip_prefix(root)
            .expect("walkdir yields paths under its root");
        let name = relative
            .to_str()
            .ok_or_else(|| PackageError::NotUtf8(relative.display().to_string()))?
            .replace(std::path::MAIN_SEPARATOR, "/");
        let file_type = item.file_type();
        let (kind, size) = if file_type.is_symlink() {
            let target = std::fs::read_link(item.path()).map_err(|source| PackageError::Read {
                path: name.clone(),
                source,
            })?;
            let target = target
                .to_str()
                .ok_or_else(|| PackageError::NotUtf8(target.display().to_string()))?
                .to_owned();
            let size = target.len() as u64;
            (Kind::Symlink(target), size)
        } else if file_type.is_file() {
            let meta = item.metadata().map_err(|e| PackageError::Read {
                path: name.clone(),
                source: e.into(),
            })?;
            (
                Kind::File {
                    executable: is_executable(&meta),
                },
                meta.len(),
            )
        } else {
            continue; // directories are implied; sockets and fifos have no place in a package
        };
        entries.push(Entry {
            name,
            path: item.into_path(),
            kind,
            size,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Base64 of the SHA-256 of a file, as Lambda reports `CodeSha256`.
pub fn sha256_base64(path: &Path) -> Result<String, PackageError> {
    let read_error = |source| PackageError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(read_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkg/sub")).unwrap();
        std::fs::write(dir.path().join("app.py"), "def handler(e, c): return 1\n").unwrap();
        std::fs::write(dir.path().join("pkg/sub/z.py"), "z = 1\n").unwrap();
        std::fs::write(dir.path().join("pkg/a.py"), "a = 1\n").unwrap();
        std::fs::write(dir.path().join("bootstrap"), "#!/bin/sh\n").unwrap();
        dir
    }

    #[test]
    fn same_tree_same_sha_whatever_mtime() {
        let a = tree();
        let out = tempfile::tempdir().unwrap();
        let p1 = build(a.path(), &out.path().join("1.zip")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = tree(); // written a second later, in another directory
        let p2 = build(b.path(), &out.path().join("2.zip")).unwrap();
        assert_eq!(p1.code_sha256, p2.code_sha256);
        assert_eq!(p1.entries, 4);
    }

    #[test]
    fn sorted_entries_and_normalised_modes() {
        let a = tree();
        let out = tempfile::tempdir().unwrap();
        let p = build(a.path(), &out.path().join("p.zip")).unwrap();
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&p.path).unwrap()).unwrap();
        let names: Vec<String> = (0..zip.len())
            .map(|i| zip.by_index(i).unwrap().name().unwrap().into_owned())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, ["app.py", "bootstrap", "pkg/a.py", "pkg/sub/z.py"]);
        assert_eq!(names, sorted);
        assert_eq!(zip.by_name("bootstrap").unwrap().unix_mode().unwrap() & 0o777, 0o755);
        assert_eq!(zip.by_name("app.py").unwrap().unix_mode().unwrap() & 0o777, 0o644);
    }

    #[test]
    fn deps_are_copied_raw_and_merged_in_order() {
        let deps_tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(deps_tree.path().join("six-1.0.dist-info")).unwrap();
        std::fs::write(deps_tree.path().join("six.py"), "x = 1\n".repeat(100)).unwrap();
        std::fs::write(deps_tree.path().join("six-1.0.dist-info/RECORD"), "six.py\n").unwrap();
        std::fs::write(deps_tree.path().join("app.py"), "from deps\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        let deps = build(deps_tree.path(), &out.path().join("deps.zip")).unwrap();

        let app = tree();
        let p = build_with_deps(app.path(), Some(&deps.path), &out.path().join("p.zip")).unwrap();
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&p.path).unwrap()).unwrap();
        let names: Vec<String> = (0..zip.len())
            .map(|i| zip.by_index(i).unwrap().name().unwrap().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "app.py",
                "bootstrap",
                "pkg/a.py",
                "pkg/sub/z.py",
                "six-1.0.dist-info/RECORD",
                "six.py"
            ]
        );
        let mut app_py = String::new();
        zip.by_name("app.py").unwrap().read_to_string(&mut app_py).unwrap();
        assert_eq!(app_py, "from deps\n", "the built dependency wins a name clash");

        // Same inputs, same bytes: a warm build equals a cold one.
        let again = build_with_deps(app.path(), Some(&deps.path), &out.path().join("q.zip")).unwrap();
        assert_eq!(p.code_sha256, again.code_sha256);
    }

    #[test]
    fn over_the_unzipped_limit_names_the_largest_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("numpy/core")).unwrap();
        std::fs::create_dir_all(dir.path().join("small")).unwrap();
        std::fs::write(dir.path().join("numpy/core/big.so"), vec![1u8; 3000]).unwrap();
        std::fs::write(dir.path().join("small/a.py"), vec![1u8; 10]).unwrap();
        let out = tempfile::tempdir().unwrap();
        let err = build_limited(dir.path(), None, &out.path().join("p.zip"), 1000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("3010 bytes") && err.contains("numpy/core 0.0 MB"), "{err}");
        assert!(!out.path().join("p.zip").exists(), "nothing written");
    }

    /// Reproducible pseudo-random bytes for test trees.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Every file kind and both the small (compressed ahead on every core) and large (streamed)
    /// paths, with content that compresses some but not entirely.
    fn fixed_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|i| {
                    let r = rng.next();
                    if i % 3 == 0 {
                        (r % 251) as u8
                    } else {
                        b'a' + (i % 7) as u8
                    }
                })
                .collect()
        };
        for d in 0..20 {
            let sub = dir.path().join(format!("lib/mod{d:02}"));
            std::fs::create_dir_all(&sub).unwrap();
            for f in 0..10 {
                std::fs::write(sub.join(format!("f{f}.py")), bytes(100 + 977 * f * d)).unwrap();
            }
        }
        std::fs::write(dir.path().join("lib/big.so"), bytes(LARGE_ENTRY_BYTES as usize + 12345)).unwrap();
        std::fs::write(dir.path().join("app.py"), "def handler(e, c): return 1\n").unwrap();
        std::fs::write(dir.path().join("bootstrap"), "#!/bin/sh\n").unwrap();
        std::fs::write(dir.path().join("empty"), "").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("lib/big.so", dir.path().join("link.so")).unwrap();
        dir
    }

    /// The CodeSha256 of a given tree is part of the contract: a new worker must not redeploy
    /// every unchanged app. This figure was written by the single-threaded packager.
    #[test]
    fn fixed_tree_keeps_its_code_sha256() {
        let tree = fixed_tree();
        let out = tempfile::tempdir().unwrap();
        let p = build(tree.path(), &out.path().join("p.zip")).unwrap();
        assert_eq!(p.entries, 205);
        assert_eq!(p.code_sha256, "JBP0aObQtT3o33cHTkZXt5k+Tok6GcHjLMH9cau2bUk=");
    }

    /// The single-threaded way: every entry deflated in place, in order.
    fn sequential(entries: &[Entry], out: &Path) {
        let mut zip = ZipWriter::new(std::fs::File::create(out).unwrap());
        let mut buf = vec![0u8; COPY_BUFFER_BYTES];
        for entry in entries {
            match &entry.kind {
                Kind::Symlink(target) => zip
                    .add_symlink(entry.name.as_str(), target.as_str(), file_options(0o777, 0))
                    .unwrap(),
                _ => {
                    zip.start_file(entry.name.as_str(), file_options(mode(entry), entry.size))
                        .unwrap();
                    copy_file(entry, &mut zip, &mut buf).unwrap();
                }
            }
        }
        zip.finish().unwrap();
    }

    /// Well over the look-ahead budget of incompressible files, so compressing threads wait on
    /// the writer, and the bytes still equal the single-threaded package's.
    #[test]
    fn compressing_ahead_under_a_full_budget_writes_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for i in 0..48 {
            let noise: Vec<u8> = (0..1_000_000).map(|_| rng.next() as u8).collect();
            std::fs::write(dir.path().join(format!("blob{i:02}.bin")), noise).unwrap();
        }
        let out = tempfile::tempdir().unwrap();
        let p = build(dir.path(), &out.path().join("p.zip")).unwrap();
        assert!(p.size > 2 * AHEAD_BUDGET_BYTES as u64);
        sequential(&collect(dir.path()).unwrap(), &out.path().join("s.zip"));
        assert_eq!(
            p.code_sha256,
            sha256_base64(&out.path().join("s.zip")).unwrap(),
            "compressing ahead changed the bytes"
        );
    }

    #[test]
    fn a_file_that_cannot_be_read_fails_the_package_by_name() {
        let tree = fixed_tree();
        let mut entries = collect(tree.path()).unwrap();
        entries[100].path = tree.path().join("vanished.py");
        let name = entries[100].name.clone();
        let out = tempfile::tempdir().unwrap();
        let mut zip = ZipWriter::new(std::fs::File::create(out.path().join("p.zip")).unwrap());
        let err = write_entries(&mut zip, &entries, None).unwrap_err();
        assert!(
            matches!(&err, PackageError::Read { path, .. } if *path == name),
            "{err}"
        );
    }

    #[test]
    fn fixed_tree_equals_the_single_threaded_package() {
        let tree = fixed_tree();
        let out = tempfile::tempdir().unwrap();
        let p = build(tree.path(), &out.path().join("p.zip")).unwrap();
        sequential(&collect(tree.path()).unwrap(), &out.path().join("s.zip"));
        assert_eq!(p.code_sha256, sha256_base64(&out.path().join("s.zip")).unwrap());
    }

    #[test]
    fn content_change_changes_sha() {
        let a = tree();
        let out = tempfile::tempdir().unwrap();
        let p1 = build(a.path(), &out.path().join("1.zip")).unwrap();
        std::fs::write(a.path().join("app.py"), "def handler(e, c): return 2\n").unwrap();
        let p2 = build(a.path(), &out.path().join("2.zip")).unwrap();
        assert_ne!(p1.code_sha256, p2.code_sha256);
    }
}
