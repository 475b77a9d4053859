//! Where a Python app's dependencies come from, and the requirements file that installs them.
//!
//! The first of these at the app root wins (the report names it as `dependencies_from`):
//!
//! 1. **`requirements.txt`**, with `-r`/`-c` includes, environment markers and `--hash`, in any
//!    encoding pip reads (UTF-8, or UTF-8/UTF-16/UTF-32 with a byte-order mark: PowerShell's
//!    `>` writes UTF-16). Files that are not plain UTF-8 are given to the installer as UTF-8
//!    copies. Editable lines (`-e`) are refused: with `--target` they install only `.pth`
//!    stubs. Local paths must stay inside the app (`./vendor/pkg` is built like any package).
//! 2. **`uv.lock`** with `pyproject.toml`: `uv export --frozen --no-dev --no-editable
//!    --no-emit-project`, i.e. exactly the locked versions of the default groups without the
//!    dev group and without the project itself (<https://docs.astral.sh/uv/reference/cli/#uv-export>).
//! 3. **`poetry.lock`** with `pyproject.toml`: the locked versions of the main group, with their
//!    hashes. Lock files of Poetry 2 (`lock-version = "2.1"`) list each package's groups; for
//!    older ones the main group is walked from `pyproject.toml`'s dependencies through the
//!    lock's dependency tables (<https://python-poetry.org/docs/basic-usage/#installing-with-poetrylock>).
//! 4. **`pylock.toml`** (PEP 751), handed to uv as it is (uv reads it natively; pip cannot).
//! 5. **`pyproject.toml`** with `[project].dependencies` and no lock: resolved at build time
//!    (`unlocked`).
//!
//! A file that cannot be read is a permanent error that names the file and, where the parser
//! knows it, the line.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};

/// The name of the requirements file generated from a lock, laid over a copy of the app.
pub const GENERATED: &str = ".auto-lambda-requirements.txt";

/// Which file the dependencies came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Requirements,
    UvLock,
    PoetryLock,
    Pylock,
    PyprojectUnlocked,
}

impl Origin {
    /// As the report's `dependencies_from` says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Requirements => "requirements.txt",
            Origin::UvLock => "uv.lock",
            Origin::PoetryLock => "poetry.lock",
            Origin::Pylock => "pylock.toml",
            Origin::PyprojectUnlocked => "pyproject.toml (unlocked)",
        }
    }
}

/// What to install and how the installer finds it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub origin: Origin,
    /// Files to lay over a copy of the app before installing, by path relative to the app
    /// root: UTF-8 copies of requirements files, or the requirements generated from a lock.
    pub overlay: Vec<(String, Vec<u8>)>,
    /// The requirements file (or `pylock.toml`) to install, relative to the app root.
    pub requirements: String,
    /// Everything the installed tree depends on, for the cache key: (name, content) of the
    /// dependency files as read, in a fixed order.
    pub inputs: Vec<(String, Vec<u8>)>,
    /// Directories inside the app that requirements point at (their files join the cache key).
    pub local_paths: Vec<PathBuf>,
}

/// Why the dependency files cannot be used. Permanent, except [`SourceError::NoUv`] and
/// [`SourceError::Io`] (see [`crate::error`]).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{file}: {problem}")]
    Invalid { file: String, problem: String },
    #[error("{file}, line {line}: `{text}` is an editable requirement; editable installs cannot be packaged (they install only a link to a folder that is not in the function). Remove `-e` to install the package itself")]
    Editable { file: String, line: usize, text: String },
    #[error("{file}, line {line}: `{text}` points outside the app; only paths inside the zip (like ./vendor/pkg) can be built")]
    OutsidePath { file: String, line: usize, text: String },
    #[error("{origin} needs uv on the worker, and there is none ({reason}); install uv (dev/setup.sh, ami/install.sh) or add a requirements.txt")]
    NoUv { origin: &'static str, reason: String },
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// Finds the dependency source of the Python app at `app`. `Ok(None)`: nothing to install.
/// `uv` is the uv binary, needed to read `uv.lock`.
pub fn python(app: &Path, uv: Option<&Path>, scratch: &Path) -> Result<Option<Plan>, SourceError> {
    let has = |f: &str| app.join(f).is_file();
    if has("requirements.txt") {
        return requirements(app);
    }
    let pyproject = has("pyproject.toml");
    if pyproject && has("uv.lock") {
        return uv_lock(app, uv, scratch).map(Some);
    }
    if pyproject && has("poetry.lock") {
        return poetry_lock(app).map(Some);
    }
    if has("pylock.toml") {
        let bytes = read(app, "pylock.toml")?;
        toml_table("pylock.toml", &bytes)?;
        return Ok(Some(Plan {
            origin: Origin::Pylock,
            overlay: vec![],
            requirements: "pylock.toml".into(),
            inputs: vec![("pylock.toml".into(), bytes)],
            local_paths: vec![],
        }));
    }
    if pyproject {
        return pyproject_unlocked(app);
    }
    Ok(None)
}

fn read(app: &Path, name: &str) -> Result<Vec<u8>, SourceError> {
    std::fs::read(app.join(name)).map_err(|source| SourceError::Io {
        file: name.to_owned(),
        source,
    })
}

/// Decodes a requirements file the way pip does: a byte-order mark decides (UTF-8, UTF-16,
/// UTF-32, either endianness); without one it must be UTF-8.
pub fn decode(file: &str, bytes: &[u8]) -> Result<String, SourceError> {
    let invalid = |what: &str| SourceError::Invalid {
        file: file.to_owned(),
        problem: format!("{what}; save it as UTF-8"),
    };
    let units = |b: &[u8], width: usize, le: bool| -> Vec<u32> {
        b.chunks_exact(width)
            .map(|c| match (width, le) {
                (2, true) => u32::from(u16::from_le_bytes([c[0], c[1]])),
                (2, false) => u32::from(u16::from_be_bytes([c[0], c[1]])),
                (_, true) => u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                (_, false) => u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            })
            .collect()
    };
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8(rest.to_vec())
            .map_err(|_| invalid("it starts with a UTF-8 byte-order mark but is not UTF-8"));
    }
    for (bom, le) in [(&[0xFF, 0xFE, 0, 0][..], true), (&[0, 0, 0xFE, 0xFF][..], false)] {
        if let Some(rest) = bytes.strip_prefix(bom) {
            if rest.len() % 4 != 0 {
                return Err(invalid("it is not valid UTF-32 (its length is not a multiple of 4)"));
            }
            return units(rest, 4, le)
                .into_iter()
                .map(char::from_u32)
                .collect::<Option<String>>()
                .ok_or_else(|| invalid("it is not valid UTF-32"));
        }
    }
    for (bom, le) in [(&[0xFF, 0xFE][..], true), (&[0xFE, 0xFF][..], false)] {
        if let Some(rest) = bytes.strip_prefix(bom) {
            if rest.len() % 2 != 0 {
                return Err(invalid("it is not valid UTF-16 (its length is odd)"));
            }
            let u16s: Vec<u16> = units(rest, 2, le).into_iter().map(|u| u as u16).collect();
            return String::from_utf16(&u16s).map_err(|_| invalid("it is not valid UTF-16"));
        }
    }
    String::from_utf8(bytes.to_vec())
        .map_err(|_| invalid("it is neither UTF-8 nor UTF-16/UTF-32 with a byte-order mark"))
}

/// One logical line of a requirements file: continuation lines joined, comments removed.
struct Line {
    number: usize,
    text: String,
}

fn logical_lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = i + 1;
        }
        let raw = raw.trim_end_matches('\r');
        // A comment starts at `#` at the line start or after whitespace (pip's rule).
        let cut = raw
            .char_indices()
            .find(|&(j, c)| c == '#' && (j == 0 || raw[..j].ends_with(char::is_whitespace)))
            .map_or(raw.len(), |(j, _)| j);
        let part = &raw[..cut];
        if let Some(head) = part.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(part);
        let text = pending.trim().to_owned();
        pending.clear();
        if !text.is_empty() {
            out.push(Line { number: start, text });
        }
    }
    out
}

/// Reads `requirements.txt` and every file it includes with `-r`/`-c`.
fn requirements(app: &Path) -> Result<Option<Plan>, SourceError> {
    let mut queue = VecDeque::from([PathBuf::from("requirements.txt")]);
    let mut seen = BTreeSet::new();
    let mut plan = Plan {
        origin: Origin::Requirements,
        overlay: vec![],
        requirements: "requirements.txt".into(),
        inputs: vec![],
        local_paths: vec![],
    };
    let mut any = false;
    while let Some(rel) = queue.pop_front() {
        if !seen.insert(rel.clone()) {
            continue;
        }
        let name = rel.to_string_lossy().into_owned();
        let bytes = read(app, &name)?;
        let text = decode(&name, &bytes)?;
        if text.as_bytes() != bytes.as_slice() {
            plan.overlay.push((name.clone(), text.clone().into_bytes()));
        }
        let dir = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        for line in logical_lines(&text) {
            let t = line.text.as_str();
            let words: Vec<&str> = t.split_whitespace().collect();
            let first = words.first().copied().unwrap_or("");
            let included = match first {
                "-r" | "--requirement" | "-c" | "--constraint" => words.get(1).copied(),
                _ => ["--requirement=", "--constraint=", "-r", "-c"]
                    .iter()
                    .find_map(|p| first.strip_prefix(p))
                    .filter(|s| !s.is_empty()),
            };
            if let Some(inc) = included {
                if inc.contains("://") {
                    any = true;
                    continue; // a URL: the installer fetches it
                }
                match inside(&dir.join(inc)) {
                    Some(p) => queue.push_back(p),
                    None => return Err(outside(&name, &line)),
                }
                continue;
            }
            if first == "-e" || first == "--editable" || first.starts_with("--editable=") {
                return Err(SourceError::Editable {
                    file: name,
                    line: line.number,
                    text: line.text,
                });
            }
            let find_links = match first {
                "-f" | "--find-links" => words.get(1).copied(),
                _ => first
                    .strip_prefix("--find-links=")
                    .or_else(|| first.strip_prefix("-f").filter(|r| !r.is_empty())),
            };
            if let Some(links) = find_links.filter(|l| !l.contains("://")) {
                // A local wheelhouse: its files are part of what gets installed.
                match inside(&dir.join(links)) {
                    Some(p) => plan.local_paths.push(p),
                    None => return Err(outside(&name, &line)),
                }
                continue;
            }
            if first.starts_with('-') {
                continue; // an option line (--index-url, --hash on its own, …)
            }
            any = true;
            if let Some(path) = local_path(t) {
                match inside(Path::new(&path)) {
                    Some(p) => plan.local_paths.push(p),
                    None => return Err(outside(&name, &line)),
                }
            }
        }
        plan.inputs.push((name, text.into_bytes()));
    }
    plan.local_paths.sort();
    plan.local_paths.dedup();
    Ok(any.then_some(plan))
}

fn outside(file: &str, line: &Line) -> SourceError {
    SourceError::OutsidePath {
        file: file.to_owned(),
        line: line.number,
        text: line.text.clone(),
    }
}

/// The local path a requirement line names, if any: `./pkg`, `.`, `../x`, `/abs`,
/// `file:pkg`, `name @ file:///abs`, `name @ ./pkg`.
fn local_path(line: &str) -> Option<String> {
    let spec = line.split(" ;").next().unwrap_or(line).trim();
    let target = match spec.split_once(" @ ") {
        Some((_, t)) => t.trim(),
        None => spec.split_whitespace().next().unwrap_or(""),
    };
    let target = target.split('[').next().unwrap_or(target);
    if let Some(rest) = target.strip_prefix("file:") {
        // `file://host/path`: the path is absolute whatever the host (`localhost`, empty, or
        // another), so it can only point outside the app.
        return Some(match rest.strip_prefix("//") {
            Some(authority_and_path) => match authority_and_path.find('/') {
                Some(i) => authority_and_path[i..].to_owned(),
                None => format!("/{authority_and_path}"),
            },
            None => rest.to_owned(),
        });
    }
    let archive = [".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz"]
        .iter()
        .any(|e| target.ends_with(e))
        && !target.contains("://");
    let looks_local = target == "."
        || target == ".."
        || target.starts_with("./")
        || target.starts_with("../")
        || target.starts_with('/')
        || archive;
    looks_local.then(|| target.to_owned())
}

/// `path` normalised, if it stays inside the app (relative, never above the root).
fn inside(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    })
}

/// `uv export --frozen --no-dev --no-editable --no-emit-project`, run on the worker in the
/// app's directory: it reads `pyproject.toml` and `uv.lock`, runs no build and needs no network.
fn uv_lock(app: &Path, uv: Option<&Path>, scratch: &Path) -> Result<Plan, SourceError> {
    let pyproject = read(app, "pyproject.toml")?;
    let lock = read(app, "uv.lock")?;
    toml_table("pyproject.toml", &pyproject)?;
    toml_table("uv.lock", &lock)?;
    let Some(uv) = uv else {
        return Err(SourceError::NoUv {
            origin: "uv.lock",
            reason: "no --uv-binary".into(),
        });
    };
    let out = std::process::Command::new(uv)
        .args([
            "export",
            "--frozen",
            "--no-dev",
            "--no-editable",
            "--no-emit-project",
            "--no-progress",
            "--color",
            "never",
        ])
        .current_dir(app)
        .env("UV_CACHE_DIR", scratch.join("uv-cache"))
        // The project's own `[tool.uv]` (default-groups, sources) decides what is exported,
        // as it does for the uploader; only Python downloads are off.
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env_remove("VIRTUAL_ENV")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| SourceError::NoUv {
            origin: "uv.lock",
            reason: format!("{}: {e}", uv.display()),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(SourceError::Invalid {
            file: "uv.lock".into(),
            problem: format!("uv export failed: {}", stderr.trim()),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut plan = generated(
        Origin::UvLock,
        &text,
        vec![("pyproject.toml".into(), pyproject), ("uv.lock".into(), lock)],
    )?;
    plan.inputs.push(("export".into(), text.into_bytes()));
    Ok(plan)
}

/// A plan that installs `text`, generated from a lock, checked like a requirements file.
fn generated(origin: Origin, text: &str, inputs: Vec<(String, Vec<u8>)>) -> Result<Plan, SourceError> {
    let mut local_paths = Vec::new();
    for line in logical_lines(text) {
        let first = line.text.split_whitespace().next().unwrap_or("");
        if first == "-e" || first == "--editable" {
            return Err(SourceError::Editable {
                file: origin.as_str().into(),
                line: line.number,
                text: line.text,
            });
        }
        if let Some(path) = local_path(&line.text) {
            match inside(Path::new(&path)) {
                Some(p) => local_paths.push(p),
                None => return Err(outside(origin.as_str(), &line)),
            }
        }
    }
    local_paths.sort();
    local_paths.dedup();
    Ok(Plan {
        origin,
        overlay: vec![(GENERATED.into(), text.as_bytes().to_vec())],
        requirements: GENERATED.into(),
        inputs,
        local_paths,
    })
}

fn toml_table(file: &str, bytes: &[u8]) -> Result<toml::Table, SourceError> {
    let text = std::str::from_utf8(bytes).map_err(|e| SourceError::Invalid {
        file: file.to_owned(),
        problem: format!("is not UTF-8 ({e})"),
    })?;
    text.parse::<toml::Table>().map_err(|e| SourceError::Invalid {
        file: file.to_owned(),
        problem: toml_error(text, &e),
    })
}

/// A TOML error as "line N: message".
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_owned();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

/// PEP 503 name normalisation: lowercase, runs of `-_.` become `-`.
fn normalise(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The distribution name at the start of a PEP 508 requirement.
fn requirement_name(req: &str) -> &str {
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(req.len());
    &req[..end]
}

fn poetry_lock(app: &Path) -> Result<Plan, SourceError> {
    let pyproject_bytes = read(app, "pyproject.toml")?;
    let lock_bytes = read(app, "poetry.lock")?;
    let pyproject = toml_table("pyproject.toml", &pyproject_bytes)?;
    let lock = toml_table("poetry.lock", &lock_bytes)?;
    let invalid = |problem: String| SourceError::Invalid {
        file: "poetry.lock".into(),
        problem,
    };
    let packages = lock
        .get("package")
        .and_then(|p| p.as_array())
        .cloned()
        .unwrap_or_default();
    let by_name: BTreeMap<String, &toml::Table> = packages
        .iter()
        .filter_map(|p| p.as_table())
        .filter_map(|p| Some((normalise(p.get("name")?.as_str()?), p)))
        .collect();
    if by_name.len() != packages.len() {
        return Err(invalid("a [[package]] entry has no name".into()));
    }
    // Which packages are in the main group.
    let has_groups = by_name.values().any(|p| p.contains_key("groups"));
    let has_category = by_name.values().any(|p| p.contains_key("category"));
    let main: BTreeSet<String> = if has_groups {
        by_name
            .iter()
            .filter(|(_, p)| {
                p.get("groups")
                    .and_then(|g| g.as_array())
                    .is_some_and(|g| g.iter().any(|v| v.as_str() == Some("main")))
            })
            .map(|(n, _)| n.clone())
            .collect()
    } else if has_category {
        by_name
            .iter()
            .filter(|(_, p)| p.get("category").and_then(|c| c.as_str()) == Some("main"))
            .map(|(n, _)| n.clone())
            .collect()
    } else {
        // Lock files of Poetry 1.5–1.8 say nothing of groups: walk from the project's own
        // main dependencies through each package's dependencies.
        let mut roots: Vec<String> = Vec::new();
        if let Some(deps) = pyproject
            .get("tool")
            .and_then(|t| t.get("poetry"))
            .and_then(|p| p.get("dependencies"))
            .and_then(|d| d.as_table())
        {
            for (name, spec) in deps {
                let optional = spec.get("optional").and_then(|o| o.as_bool()).unwrap_or(false);
                if name != "python" && !optional {
                    roots.push(normalise(name));
                }
            }
        }
        if let Some(deps) = pyproject
            .get("project")
            .and_then(|p| p.get("dependencies"))
            .and_then(|d| d.as_array())
        {
            roots.extend(
                deps.iter()
                    .filter_map(|d| d.as_str())
                    .map(|d| normalise(requirement_name(d))),
            );
        }
        let mut main = BTreeSet::new();
        let mut queue: VecDeque<String> = roots.into();
        while let Some(name) = queue.pop_front() {
            let Some(package) = by_name.get(&name) else { continue };
            if !main.insert(name) {
                continue;
            }
            if let Some(deps) = package.get("dependencies").and_then(|d| d.as_table()) {
                for (dep, spec) in deps {
                    let optional = spec.get("optional").and_then(|o| o.as_bool()).unwrap_or(false);
                    if !optional {
                        queue.push_back(normalise(dep));
                    }
                }
            }
        }
        main
    };
    // Hashes: per package (`files`, lock 2.x) or in [metadata.files] (lock 1.x).
    let old_files = lock
        .get("metadata")
        .and_then(|m| m.get("files"))
        .and_then(|f| f.as_table());
    let mut lines = Vec::new();
    for name in &main {
        let p = by_name[name];
        let display = p.get("name").and_then(|n| n.as_str()).unwrap_or(name);
        let version = p
            .get("version")
            .and_then(|v| v.as_str())
            .ok_or_else(|| invalid(format!("package `{display}` has no version")))?;
        let marker = match p.get("markers") {
            Some(toml::Value::String(m)) => Some(m.clone()),
            Some(toml::Value::Table(t)) => t.get("main").and_then(|m| m.as_str()).map(str::to_owned),
            _ => None,
        };
        let source = p.get("source").and_then(|s| s.as_table());
        let kind = source
            .and_then(|s| s.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("");
        let url = source.and_then(|s| s.get("url")).and_then(|u| u.as_str()).unwrap_or("");
        let mut line = match kind {
            "directory" | "file" => {
                if p.get("develop").and_then(|d| d.as_bool()).unwrap_or(false) {
                    return Err(SourceError::Editable {
                        file: "poetry.lock".into(),
                        line: 0,
                        text: format!("{display} (develop = true, {url})"),
                    });
                }
                if inside(Path::new(url)).is_none() {
                    return Err(SourceError::OutsidePath {
                        file: "poetry.lock".into(),
                        line: 0,
                        text: format!("{display} @ {url}"),
                    });
                }
                format!("{display} @ file:./{}", url.trim_start_matches("./"))
            }
            "git" => {
                let reference = source
                    .and_then(|s| s.get("resolved_reference"))
                    .and_then(|r| r.as_str())
                    .unwrap_or("");
                format!("{display} @ git+{url}@{reference}")
            }
            "url" => format!("{display} @ {url}"),
            "legacy" => {
                // A private index: installing the name from PyPI instead could fetch a
                // different package of the same name.
                return Err(invalid(format!(
                    "package `{display}` comes from the private index {url}, which the worker does not use; export a requirements.txt with `--index-url`, or vendor the package"
                )));
            }
            _ => format!("{display}=={version}"),
        };
        if let Some(m) = marker.filter(|m| !m.trim().is_empty()) {
            line.push_str(" ; ");
            line.push_str(&m);
        }
        let files = p
            .get("files")
            .or_else(|| {
                old_files
                    .and_then(|f| f.get(display))
                    .or_else(|| old_files.and_then(|f| f.get(name.as_str())))
            })
            .and_then(|f| f.as_array());
        let hashes: Vec<String> = files
            .map(|fs| {
                fs.iter()
                    .filter_map(|f| f.get("hash").and_then(|h| h.as_str()))
                    .map(|h| format!("--hash={h}"))
                    .collect()
            })
            .unwrap_or_default();
        lines.push((line, hashes, matches!(kind, "" | "legacy")));
    }
    // pip's hash-checking mode is all or nothing: hashes only if every registry package has them.
    let all_hashed = lines.iter().all(|(_, h, registry)| !registry || !h.is_empty());
    let mut text = String::from("# generated by auto-lambda from poetry.lock (main group)\n");
    for (line, hashes, registry) in lines {
        text.push_str(&line);
        if all_hashed && registry {
            for h in hashes {
                text.push_str(" \\\n    ");
                text.push_str(&h);
            }
        }
        text.push('\n');
    }
    generated(
        Origin::PoetryLock,
        &text,
        vec![
            ("pyproject.toml".into(), pyproject_bytes),
            ("poetry.lock".into(), lock_bytes),
        ],
    )
}

fn pyproject_unlocked(app: &Path) -> Result<Option<Plan>, SourceError> {
    let bytes = read(app, "pyproject.toml")?;
    let pyproject = toml_table("pyproject.toml", &bytes)?;
    let deps = match pyproject.get("project").and_then(|p| p.get("dependencies")) {
        None => return Ok(None),
        Some(toml::Value::Array(a)) => a,
        Some(_) => {
            return Err(SourceError::Invalid {
                file: "pyproject.toml".into(),
                problem: "[project].dependencies must be a list of requirement strings".into(),
            })
        }
    };
    let mut text = String::from("# generated by auto-lambda from pyproject.toml [project].dependencies (unlocked)\n");
    for d in deps {
        let Some(d) = d.as_str() else {
            return Err(SourceError::Invalid {
                file: "pyproject.toml".into(),
                problem: format!("[project].dependencies holds {d:?}, not a requirement string"),
            });
        };
        text.push_str(d);
        text.push('\n');
    }
    if deps.is_empty() {
        return Ok(None);
    }
    generated(Origin::PyprojectUnlocked, &text, vec![("pyproject.toml".into(), bytes)]).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        dir
    }

    fn utf16le_bom(text: &str) -> Vec<u8> {
        let mut out = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out
    }

    #[test]
    fn encodings_pip_reads() {
        assert_eq!(decode("r", b"six==1.16.0\n").unwrap(), "six==1.16.0\n");
        assert_eq!(decode("r", b"\xEF\xBB\xBFsix\n").unwrap(), "six\n");
        assert_eq!(decode("r", &utf16le_bom("six==1.16.0\r\n")).unwrap(), "six==1.16.0\r\n");
        let err = decode("requirements.txt", b"\xff\xfe\x00")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("requirements.txt"), "{err}");
        let err = decode("requirements.txt", b"caf\xe9\n").unwrap_err().to_string();
        assert!(err.contains("requirements.txt") && err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn requirements_follow_includes_and_refuse_editables() {
        let dir = app(&[
            ("requirements.txt", b"-r reqs/base.txt\n-c constraints.txt\nrequests==2.32.3 ; python_version >= '3.8' \\\n  --hash=sha256:abc\n./vendor/pkg\n"),
            ("reqs/base.txt", &utf16le_bom("six==1.16.0\n")),
            ("constraints.txt", b"urllib3<3\n"),
        ]);
        let plan = python(dir.path(), None, dir.path()).unwrap().unwrap();
        assert_eq!(plan.origin, Origin::Requirements);
        assert_eq!(plan.overlay.len(), 1, "the UTF-16 file gets a UTF-8 copy");
        assert_eq!(plan.overlay[0].0, "reqs/base.txt");
        assert_eq!(plan.local_paths, [PathBuf::from("vendor/pkg")]);
        assert_eq!(plan.inputs.len(), 3);

        let dir = app(&[("requirements.txt", b"six\n\n-e ./libs/shared\n")]);
        let err = python(dir.path(), None, dir.path()).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("-e ./libs/shared"), "{err}");
        let dir = app(&[("requirements.txt", b"../outside/pkg\n")]);
        assert!(matches!(
            python(dir.path(), None, dir.path()),
            Err(SourceError::OutsidePath { .. })
        ));
        let dir = app(&[("requirements.txt", b"# nothing\n\n")]);
        assert!(python(dir.path(), None, dir.path()).unwrap().is_none());
    }

    #[test]
    fn poetry_main_group_with_hashes() {
        let pyproject = b"[tool.poetry]\nname = \"x\"\n[tool.poetry.dependencies]\npython = \"^3.11\"\nrequests = \"^2\"\n[tool.poetry.group.dev.dependencies]\npytest = \"*\"\n";
        // Poetry 2: groups per package.
        let lock = br#"
[[package]]
name = "requests"
version = "2.32.3"
groups = ["main"]
files = [{file = "requests-2.32.3-py3-none-any.whl", hash = "sha256:aaa"}]
[package.dependencies]
certifi = ">=2017"
[[package]]
name = "certifi"
version = "2024.8.30"
groups = ["main"]
markers = "python_version >= \"3.8\""
files = [{file = "certifi.whl", hash = "sha256:bbb"}]
[[package]]
name = "pytest"
version = "8.3.3"
groups = ["dev"]
files = [{file = "pytest.whl", hash = "sha256:ccc"}]
[metadata]
lock-version = "2.1"
"#;
        let dir = app(&[("pyproject.toml", pyproject), ("poetry.lock", lock)]);
        let plan = python(dir.path(), None, dir.path()).unwrap().unwrap();
        let text = String::from_utf8(plan.overlay[0].1.clone()).unwrap();
        assert!(text.contains("requests==2.32.3 \\\n    --hash=sha256:aaa"), "{text}");
        assert!(
            text.contains("certifi==2024.8.30 ; python_version >= \"3.8\""),
            "{text}"
        );
        assert!(!text.contains("pytest"), "{text}");
        // Poetry 1.5-1.8: no groups; walked from pyproject.
        let old = String::from_utf8(lock.to_vec())
            .unwrap()
            .replace("groups = [\"main\"]\n", "")
            .replace("groups = [\"dev\"]\n", "");
        let dir = app(&[("pyproject.toml", pyproject), ("poetry.lock", old.as_bytes())]);
        let plan = python(dir.path(), None, dir.path()).unwrap().unwrap();
        let text = String::from_utf8(plan.overlay[0].1.clone()).unwrap();
        assert!(
            text.contains("requests==2.32.3") && text.contains("certifi==") && !text.contains("pytest"),
            "{text}"
        );
        // A broken lock names the file and the line.
        let dir = app(&[
            ("pyproject.toml", pyproject),
            ("poetry.lock", b"[[package]]\nname = \"x\"\nversion = 1.0.0\n"),
        ]);
        let err = python(dir.path(), None, dir.path()).unwrap_err().to_string();
        assert!(err.starts_with("poetry.lock: line 3"), "{err}");
    }

    #[test]
    fn pyproject_without_lock_is_unlocked() {
        let dir = app(&[(
            "pyproject.toml",
            b"[project]\nname = \"x\"\ndependencies = [\"six>=1.16\"]\n",
        )]);
        let plan = python(dir.path(), None, dir.path()).unwrap().unwrap();
        assert_eq!(plan.origin.as_str(), "pyproject.toml (unlocked)");
        let dir = app(&[("pyproject.toml", b"[project]\nname = \"x\"\n")]);
        assert!(python(dir.path(), None, dir.path()).unwrap().is_none());
    }

    #[test]
    fn local_paths() {
        assert_eq!(local_path("./vendor/a"), Some("./vendor/a".into()));
        assert_eq!(local_path("b @ file:./vendor/b"), Some("./vendor/b".into()));
        assert_eq!(local_path("c @ file:///abs/c"), Some("/abs/c".into()));
        assert_eq!(local_path("c @ file://localhost/etc/x"), Some("/etc/x".into()));
        assert_eq!(
            local_path("vendor/pkg-1.0-py3-none-any.whl"),
            Some("vendor/pkg-1.0-py3-none-any.whl".into())
        );
        assert_eq!(local_path("six==1.16"), None);
        assert_eq!(local_path("d[x] @ https://h/d.whl"), None);
        assert_eq!(inside(Path::new("a/../b")), Some(PathBuf::from("b")));
        assert_eq!(inside(Path::new("../b")), None);
        assert_eq!(inside(Path::new("/b")), None);
    }
}
