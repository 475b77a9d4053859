//! The uploaded zip: fetching the exact object an event names, and unpacking it without
//! trusting a byte of it.
//!
//! Unpacking enforces, per configured [`Limits`]: the zip's size, the number of entries, the
//! total unpacked size and each entry's compression ratio (counted on the bytes actually
//! written, never on the sizes the zip claims). Entry names must be relative UTF-8 paths that
//! stay inside the destination; symlinks must point inside it too, and are created only after
//! every regular file, so nothing is ever written through one.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use tokio::io::AsyncWriteExt;

use crate::event::ObjectCreated;

/// Bounds on what one upload may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_zip_bytes: u64,
    pub max_unpacked_bytes: u64,
    pub max_entries: usize,
    /// Highest allowed uncompressed:compressed ratio of one entry, checked above 1 MiB.
    pub max_ratio: u64,
}

impl Limits {
    /// The worker's defaults (its `--max-*` flags): a 256 MiB zip, 250 MiB unpacked (Lambda's
    /// own limit), 50,000 entries, 200:1 per entry.
    pub const DEFAULT: Limits = Limits {
        max_zip_bytes: 256 << 20,
        max_unpacked_bytes: 250 << 20,
        max_entries: 50_000,
        max_ratio: 200,
    };
}

/// Entries smaller than this are never called bombs, whatever their ratio.
const RATIO_FLOOR_BYTES: u64 = 1 << 20;

/// Why an upload could not be fetched or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot download s3://{bucket}/{key}: {}", crate::sdk_error::describe(source))]
    Download {
        bucket: String,
        key: String,
        #[source]
        source: Box<SdkError<GetObjectError, HttpResponse>>,
    },
    #[error("download of s3://{bucket}/{key} broke off: {message}")]
    Stream {
        bucket: String,
        key: String,
        message: String,
    },
    #[error(
        "cannot store the package at s3://{bucket}/{key}: {}",
        crate::sdk_error::describe(source)
    )]
    Upload {
        bucket: String,
        key: String,
        #[source]
        source: Box<SdkError<PutObjectError, HttpResponse>>,
    },
    #[error("cannot read the package {path} to store it: {source}")]
    ReadPackage {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the upload is larger than the {limit}-byte limit")]
    ZipTooLarge { limit: u64 },
    #[error("the upload is not a valid zip archive: {0}")]
    NotAZip(String),
    #[error("the zip has no files")]
    Empty,
    #[error("the zip has {count} entries; the limit is {limit}")]
    TooManyEntries { count: usize, limit: usize },
    #[error("the zip unpacks to more than the {limit}-byte limit (at entry `{entry}`)")]
    UnpackedTooLarge { entry: String, limit: u64 },
    #[error("entry `{entry}` expands more than {limit}:1; refusing a likely zip bomb")]
    Bomb { entry: String, limit: u64 },
    #[error("entry name {entry:?} is unsafe: {reason}")]
    UnsafePath { entry: String, reason: &'static str },
    #[error("entry names repeat in the zip ({0} are duplicates)")]
    Duplicate(String),
    #[error("symlink `{entry}` points outside the app, or at nothing in it (to `{target}`)")]
    SymlinkEscape { entry: String, target: String },
    #[error("cannot write `{entry}` while unpacking: {source}")]
    Write {
        entry: String,
        #[source]
        source: std::io::Error,
    },
}

/// What was unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub files: usize,
    pub bytes: u64,
    /// Entries left out because they are macOS Finder metadata (`__MACOSX/`, `._*`,
    /// `.DS_Store`), in zip order.
    pub dropped: Vec<String>,
}

/// macOS Finder metadata: the `__MACOSX/` tree of resource forks, AppleDouble `._name` files
/// and `.DS_Store`. None of it is part of the app, and `._app.py` would even shadow nothing
/// but confuse tools that list modules.
pub fn is_macos_metadata(relative: &Path) -> bool {
    relative.components().any(|c| c.as_os_str() == "__MACOSX")
        || relative
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == ".DS_Store" || n.starts_with("._"))
}

/// Copies the tree at `from` into `to` (created if needed), in file-name order, symlinks as
/// symlinks. Whatever already sits at a file's destination (a symlink, say) is replaced, never
/// written through. `leave_out(relative, entry)` drops an entry (a folder with all it holds);
/// returns the relative paths left out, in that order.
pub fn copy_tree(
    from: &Path,
    to: &Path,
    mut leave_out: impl FnMut(&Path, &walkdir::DirEntry) -> bool,
) -> std::io::Result<Vec<String>> {
    let mut dropped = Vec::new();
    let mut walk = walkdir::WalkDir::new(from)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(std::io::Error::other)?;
        let rel = entry.path().strip_prefix(from).map_err(std::io::Error::other)?;
        let kind = entry.file_type();
        if !rel.as_os_str().is_empty() && leave_out(rel, &entry) {
            dropped.push(rel.to_string_lossy().into_owned());
            if kind.is_dir() {
                walk.skip_current_dir();
            }
            continue;
        }
        let dest = to.join(rel);
        if kind.is_dir() {
            std::fs::create_dir_all(&dest)?;
            continue;
        }
        match std::fs::remove_file(&dest) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(dropped)
}

/// Downloads the exact object `object` names into `dest`.
///
/// On a versioned bucket the event's `versionId` pins the object. Otherwise the event's ETag
/// is sent as `If-Match`, so a newer upload under the same key fails with 412 instead of being
/// deployed under the older event's name. Returns the object's size.
pub async fn fetch(
    s3: &aws_sdk_s3::Client,
    object: &ObjectCreated,
    dest: &Path,
    limit: u64,
) -> Result<u64, ArtifactError> {
    let mut request = s3.get_object().bucket(&object.bucket).key(&object.key);
    if let Some(version) = &object.version_id {
        request = request.version_id(version);
    } else if let Some(etag) = &object.etag {
        request = request.if_match(format!("\"{etag}\""));
    }
    let download_error = |source| ArtifactError::Download {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        source: Box::new(source),
    };
    let stream_error = |message: String| ArtifactError::Stream {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        message,
    };
    let write_error = |source| ArtifactError::Write {
        entry: dest.display().to_string(),
        source,
    };

    let output = request.send().await.map_err(download_error)?;
    if output.content_length().is_some_and(|n| n as u64 > limit) {
        return Err(ArtifactError::ZipTooLarge { limit });
    }
    let mut body = output.body;
    let mut file = tokio::fs::File::create(dest).await.map_err(write_error)?;
    let mut written = 0u64;
    while let Some(chunk) = body.try_next().await.map_err(|e| stream_error(e.to_string()))? {
        written += chunk.len() as u64;
        if written > limit {
            return Err(ArtifactError::ZipTooLarge { limit });
        }
        file.write_all(&chunk).await.map_err(write_error)?;
    }
    file.flush().await.map_err(write_error)?;
    Ok(written)
}

/// Puts a package too large to send inline under the artifacts prefix of `bucket`, keyed by
/// function and content, and returns its key. Streams from disk.
pub async fn store_package(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    function: &str,
    package: &crate::package::Package,
) -> Result<String, ArtifactError> {
    use base64::Engine as _;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(&package.code_sha256)
        .unwrap_or_default();
    let key = format!(
        "{prefix}{function}/{}.zip",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    );
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&package.path)
        .await
        .map_err(|e| ArtifactError::ReadPackage {
            path: package.path.clone(),
            source: std::io::Error::other(e),
        })?;
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .body(body)
        .send()
        .await
        .map_err(|e| ArtifactError::Upload {
            bucket: bucket.to_owned(),
            key: key.clone(),
            source: Box::new(e),
        })?;
    Ok(key)
}

/// Unpacks the zip at `zip_path` into the empty directory `dest`, enforcing `limits`.
pub fn unpack(zip_path: &Path, dest: &Path, limits: &Limits) -> Result<Unpacked, ArtifactError> {
    let file = std::fs::File::open(zip_path).map_err(|e| ArtifactError::Write {
        entry: zip_path.display().to_string(),
        source: e,
    })?;
    let mut archive =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| ArtifactError::NotAZip(e.to_string()))?;
    if archive.len() > limits.max_entries {
        return Err(ArtifactError::TooManyEntries {
            count: archive.len(),
            limit: limits.max_entries,
        });
    }
    // The zip library keys entries by name, so a second entry of the same name would vanish
    // silently; compare with the count the archive itself declares.
    if let Some(declared) = declared_entries(zip_path) {
        if declared != archive.len() {
            return Err(ArtifactError::Duplicate(format!(
                "{} of {declared} entries",
                declared - archive.len().min(declared)
            )));
        }
    }
    let mut seen = HashSet::new();
    let mut dropped = Vec::new();
    let mut symlinks = Vec::new();
    let mut total = 0u64;
    let mut files = 0usize;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| ArtifactError::NotAZip(e.to_string()))?;
        let name = std::str::from_utf8(entry.name_raw())
            .map_err(|_| ArtifactError::UnsafePath {
                entry: String::from_utf8_lossy(entry.name_raw()).into_owned(),
                reason: "not UTF-8",
            })?
            .to_owned();
        let relative = safe_relative_path(&name)?;
        if relative.as_os_str().is_empty() {
            continue; // "./" and the like
        }
        if is_macos_metadata(&relative) {
            if !entry.is_dir() {
                dropped.push(name);
            }
            continue;
        }
        if !seen.insert(relative.clone()) {
            return Err(ArtifactError::Duplicate(name));
        }
        let target = dest.join(&relative);
        let write_error = |source| ArtifactError::Write {
            entry: name.clone(),
            source,
        };
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(write_error)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        let ratio_cap = limits
            .max_ratio
            .saturating_mul(entry.compressed_size().max(1))
            .max(RATIO_FLOOR_BYTES);
        let budget = limits.max_unpacked_bytes - total;
        let cap = ratio_cap.min(budget);
        if entry.is_symlink() {
            let mut link = String::new();
            (&mut entry)
                .take(4096)
                .read_to_string(&mut link)
                .map_err(|_| ArtifactError::UnsafePath {
                    entry: name.clone(),
                    reason: "symlink target is not UTF-8",
                })?;
            check_symlink(&name, &relative, &link)?;
            symlinks.push((target, link));
            continue;
        }
        let mode = entry.unix_mode();
        let mut out = std::fs::File::create(&target).map_err(write_error)?;
        let copied = copy_capped(&mut entry, &mut out, cap).map_err(|e| match e {
            CopyError::Read(e) => ArtifactError::NotAZip(format!("entry `{name}`: {e}")),
            CopyError::Write(e) => write_error(e),
        })?;
        if copied > cap {
            return Err(if cap == budget {
                ArtifactError::UnpackedTooLarge {
                    entry: name,
                    limit: limits.max_unpacked_bytes,
                }
            } else {
                ArtifactError::Bomb {
                    entry: name,
                    limit: limits.max_ratio,
                }
            });
        }
        total += copied;
        files += 1;
        if mode.is_some_and(|m| m & 0o111 != 0) {
            set_executable(&target).map_err(write_error)?;
        }
    }
    for (path, link) in &symlinks {
        make_symlink(link, path).map_err(|source| ArtifactError::Write {
            entry: path.display().to_string(),
            source,
        })?;
        files += 1;
    }
    // Each target was checked on its own, lexically; a chain (`a -> d/e/s/../../..` where
    // `d/e/s -> ../..`) can still lead out. Resolve every link as the kernel will, now that
    // all of them exist: it must land inside the app. One that resolves to nothing is refused
    // too, since a later file could not be told from an escape.
    if !symlinks.is_empty() {
        let root = std::fs::canonicalize(dest).map_err(|source| ArtifactError::Write {
            entry: dest.display().to_string(),
            source,
        })?;
        for (path, link) in &symlinks {
            let inside = std::fs::canonicalize(path).is_ok_and(|resolved| resolved.starts_with(&root));
            if !inside {
                let entry = path.strip_prefix(dest).unwrap_or(path).display().to_string();
                return Err(ArtifactError::SymlinkEscape {
                    entry,
                    target: link.clone(),
                });
            }
        }
    }
    if files == 0 {
        return Err(ArtifactError::Empty);
    }
    Ok(Unpacked {
        files,
        bytes: total,
        dropped,
    })
}

/// The entry count in the end-of-central-directory record, if the archive has a plain (not
/// ZIP64) one.
fn declared_entries(zip_path: &Path) -> Option<usize> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(zip_path).ok()?;
    let len = file.metadata().ok()?.len();
    let tail_len = len.min(22 + 65_535);
    file.seek(SeekFrom::Start(len - tail_len)).ok()?;
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact(&mut tail).ok()?;
    let at = tail.windows(4).rposition(|w| w == [0x50, 0x4b, 0x05, 0x06])?;
    let record = tail.get(at..at + 22)?;
    let total = u16::from_le_bytes([record[10], record[11]]);
    (total != 0xFFFF).then_some(total as usize)
}

enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Copies at most `cap + 1` bytes, so that the caller can tell "exactly cap" from "more".
fn copy_capped(reader: &mut impl Read, writer: &mut impl Write, cap: u64) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut copied = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(CopyError::Read)?;
        if n == 0 {
            return Ok(copied);
        }
        copied += n as u64;
        if copied > cap {
            return Ok(copied);
        }
        writer.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

/// Turns a zip entry name into a relative path that cannot leave the destination.
///
/// `\` counts as a folder separator: zips written by some Windows tools (PowerShell 5's
/// `Compress-Archive`, .NET's `ZipFile` before 4.6.1) use it, against the zip specification
/// (APPNOTE 4.4.17: "all slashes must be forward slashes"). The name is then checked like any
/// other, so `..\..\x` is still refused.
fn safe_relative_path(raw: &str) -> Result<PathBuf, ArtifactError> {
    let unsafe_path = |reason| ArtifactError::UnsafePath {
        entry: raw.to_owned(),
        reason,
    };
    let converted = raw.replace('\\', "/");
    let name = converted.as_str();
    if name.contains('\0') {
        return Err(unsafe_path("contains a NUL byte"));
    }
    if name.starts_with('/') {
        return Err(unsafe_path("is absolute"));
    }
    let mut out = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => {
                if part
                    .to_str()
                    .is_some_and(|p| p.len() >= 2 && p.as_bytes()[1] == b':' && p.as_bytes()[0].is_ascii_alphabetic())
                    && out.as_os_str().is_empty()
                {
                    return Err(unsafe_path("starts with a drive letter"));
                }
                out.push(part)
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("contains `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(unsafe_path("is absolute")),
        }
    }
    Ok(out)
}

/// A symlink may point only at something inside the app, by a relative path.
fn check_symlink(name: &str, relative: &Path, link: &str) -> Result<(), ArtifactError> {
    let escape = || ArtifactError::SymlinkEscape {
        entry: name.to_owned(),
        target: link.to_owned(),
    };
    if link.is_empty() || link.starts_with('/') || link.contains('\\') || link.contains('\0') {
        return Err(escape());
    }
    // Resolve lexically from the link's own directory; depth below the root must never go negative.
    let mut depth: i64 = relative.components().count() as i64 - 1;
    for component in Path::new(link).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(escape());
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(escape()),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn make_symlink(link: &str, path: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(link, path)
}

#[cfg(not(unix))]
fn make_symlink(_link: &str, _path: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other("symlinks are supported on Unix only"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    const LIMITS: Limits = Limits {
        max_zip_bytes: 1 << 30,
        max_unpacked_bytes: 64 << 20,
        max_entries: 100,
        max_ratio: 100,
    };

    fn zip_of(build: impl FnOnce(&mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>)) -> tempfile::NamedTempFile {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        build(&mut w);
        let bytes = w.finish().unwrap().into_inner();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        f
    }

    fn unpack_zip(z: &tempfile::NamedTempFile) -> (tempfile::TempDir, Result<Unpacked, ArtifactError>) {
        let dir = tempfile::tempdir().unwrap();
        let r = unpack(z.path(), dir.path(), &LIMITS);
        (dir, r)
    }

    #[test]
    fn unpacks_files_and_dirs() {
        let z = zip_of(|w| {
            w.add_directory("pkg/", SimpleFileOptions::default()).unwrap();
            w.start_file("pkg/a.py", SimpleFileOptions::default()).unwrap();
            w.write_all(b"print(1)").unwrap();
            w.start_file("run.sh", SimpleFileOptions::default().unix_permissions(0o755))
                .unwrap();
            w.write_all(b"#!/bin/sh").unwrap();
        });
        let (dir, r) = unpack_zip(&z);
        assert_eq!(
            r.unwrap(),
            Unpacked {
                files: 2,
                bytes: 17,
                dropped: vec![]
            }
        );
        assert_eq!(std::fs::read(dir.path().join("pkg/a.py")).unwrap(), b"print(1)");
    }

    #[test]
    fn windows_separators_are_folders_and_macos_metadata_is_dropped() {
        let z = zip_of(|w| {
            w.start_file("pkg\\sub\\a.py", SimpleFileOptions::default()).unwrap();
            w.write_all(b"x").unwrap();
            w.start_file("__MACOSX/pkg/._a.py", SimpleFileOptions::default())
                .unwrap();
            w.write_all(b"junk").unwrap();
            w.start_file("pkg/._a.py", SimpleFileOptions::default()).unwrap();
            w.write_all(b"junk").unwrap();
            w.start_file(".DS_Store", SimpleFileOptions::default()).unwrap();
            w.write_all(b"junk").unwrap();
        });
        let (dir, r) = unpack_zip(&z);
        let r = r.unwrap();
        assert_eq!(r.files, 1);
        assert_eq!(r.dropped, ["__MACOSX/pkg/._a.py", "pkg/._a.py", ".DS_Store"]);
        assert_eq!(std::fs::read(dir.path().join("pkg/sub/a.py")).unwrap(), b"x");
        assert!(!dir.path().join("__MACOSX").exists());
    }

    #[test]
    fn refuses_traversal_and_absolute_names() {
        for bad in ["../evil.py", "a/../../evil.py", "/etc/passwd", "C:/x", "a\\..\\b"] {
            let z = zip_of(|w| {
                w.start_file(bad, SimpleFileOptions::default()).unwrap();
                w.write_all(b"x").unwrap();
            });
            let (_d, r) = unpack_zip(&z);
            assert!(matches!(r, Err(ArtifactError::UnsafePath { .. })), "{bad}: {r:?}");
        }
    }

    #[test]
    fn refuses_escaping_symlink_and_keeps_inner_one() {
        let z = zip_of(|w| {
            w.add_symlink("link", "../../etc/passwd", SimpleFileOptions::default())
                .unwrap();
        });
        assert!(matches!(unpack_zip(&z).1, Err(ArtifactError::SymlinkEscape { .. })));
        let z = zip_of(|w| {
            w.start_file("lib/real.py", SimpleFileOptions::default()).unwrap();
            w.write_all(b"x").unwrap();
            w.add_symlink("bin/alias.py", "../lib/real.py", SimpleFileOptions::default())
                .unwrap();
        });
        let (dir, r) = unpack_zip(&z);
        assert_eq!(r.unwrap().files, 2);
        assert!(dir
            .path()
            .join("bin/alias.py")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn refuses_symlink_chains_that_lead_out() {
        let z = zip_of(|w| {
            w.start_file("d/e/keep.py", SimpleFileOptions::default()).unwrap();
            w.write_all(b"x").unwrap();
            w.add_symlink("d/e/s", "../..", SimpleFileOptions::default()).unwrap();
            w.add_symlink("foo", "d/e/s/../../..", SimpleFileOptions::default())
                .unwrap();
        });
        let (_d, r) = unpack_zip(&z);
        assert!(
            matches!(r, Err(ArtifactError::SymlinkEscape { ref entry, .. }) if entry == "foo"),
            "{r:?}"
        );
        let z = zip_of(|w| {
            w.start_file("a.py", SimpleFileOptions::default()).unwrap();
            w.write_all(b"x").unwrap();
            w.add_symlink("dangling", "nothing/here", SimpleFileOptions::default())
                .unwrap();
        });
        assert!(matches!(unpack_zip(&z).1, Err(ArtifactError::SymlinkEscape { .. })));
    }

    #[test]
    fn refuses_bombs_and_oversize() {
        let z = zip_of(|w| {
            w.start_file("zeros", SimpleFileOptions::default()).unwrap();
            w.write_all(&vec![0u8; 8 << 20]).unwrap();
        });
        assert!(matches!(unpack_zip(&z).1, Err(ArtifactError::Bomb { .. })));
        let small = Limits {
            max_unpacked_bytes: 10,
            ..LIMITS
        };
        let z = zip_of(|w| {
            w.start_file("a", SimpleFileOptions::default()).unwrap();
            w.write_all(b"0123456789abc").unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpack(z.path(), dir.path(), &small),
            Err(ArtifactError::UnpackedTooLarge { .. })
        ));
    }

    #[test]
    fn refuses_non_zip_empty_and_too_many_entries() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"definitely not a zip").unwrap();
        assert!(matches!(unpack_zip(&f).1, Err(ArtifactError::NotAZip(_))));
        assert!(matches!(unpack_zip(&zip_of(|_| {})).1, Err(ArtifactError::Empty)));
        let z = zip_of(|w| {
            for i in 0..101 {
                w.start_file(format!("f{i}"), SimpleFileOptions::default()).unwrap();
            }
        });
        assert!(matches!(
            unpack_zip(&z).1,
            Err(ArtifactError::TooManyEntries { count: 101, .. })
        ));
    }
}

/// Property tests: unpacking arbitrary or corrupted archives never panics and never writes
/// outside the destination. Run longer with PROPTEST_CASES=100000.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        max_zip_bytes: 1 << 20,
        max_unpacked_bytes: 4 << 20,
        max_entries: 64,
        max_ratio: 50,
    };

    fn valid_zip() -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default();
        w.start_file("app.py", o).unwrap();
        w.write_all(b"def handler(e, c):\n    return 1\n").unwrap();
        w.start_file("pkg/mod.py", o.compression_method(zip::CompressionMethod::Stored))
            .unwrap();
        w.write_all(&[7u8; 300]).unwrap();
        w.add_symlink("pkg/link.py", "mod.py", o).unwrap();
        w.finish().unwrap().into_inner()
    }

    /// Unpacks `bytes` into a fresh `root/dest` and checks that only `dest` got anything.
    fn unpack_contained(bytes: &[u8]) -> Result<(), TestCaseError> {
        let root = tempfile::tempdir().unwrap();
        let zip_path = root.path().join("in.zip");
        std::fs::write(&zip_path, bytes).unwrap();
        let dest = root.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        let _ = unpack(&zip_path, &dest, &LIMITS);
        let mut names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        prop_assert_eq!(
            names,
            vec![std::ffi::OsString::from("dest"), std::ffi::OsString::from("in.zip")]
        );
        for entry in walkdir::WalkDir::new(&dest).follow_links(false) {
            let entry = entry.unwrap();
            if entry.file_type().is_symlink() {
                let target = std::fs::read_link(entry.path()).unwrap();
                let resolved = entry.path().parent().unwrap().join(target);
                let mut depth = 0i32;
                for c in resolved.strip_prefix(&dest).unwrap().components() {
                    match c {
                        std::path::Component::ParentDir => depth -= 1,
                        std::path::Component::Normal(_) => depth += 1,
                        _ => {}
                    }
                    prop_assert!(depth >= 0, "symlink escapes: {:?}", entry.path());
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases(1000)))]

        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            unpack_contained(&bytes)?;
        }

        #[test]
        fn corrupted_valid_zip(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12)) {
            let mut bytes = valid_zip();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            unpack_contained(&bytes)?;
        }

        #[test]
        fn hostile_names(name in "[a-z./\\\\:]{1,24}") {
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            if w.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).is_ok() {
                w.write_all(b"x").unwrap();
                let bytes = w.finish().unwrap().into_inner();
                unpack_contained(&bytes)?;
            }
        }
    }
}
