//! Python projects as people write them today: uv and Poetry lock files, pyproject without a
//! lock, requirements.txt saved by PowerShell, built with uv, for both architectures from one
//! x86_64 worker. Through the real binary against moto, with real PyPI (reachable from these
//! machines through a TLS-intercepting proxy, hence the host's CA bundle).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;

const T: Duration = Duration::from_secs(300);

/// A worker that installs from PyPI in the local images, with its cache in `cache`.
fn online_worker(stack: &Stack, cache: &Path) -> Worker {
    online_worker_with(stack, cache, &[])
}

fn online_worker_with(stack: &Stack, cache: &Path, extra: &[&str]) -> Worker {
    let mut args = vec!["--build-network", "bridge", "--cache-dir", cache.to_str().unwrap()];
    args.extend(extra);
    let ca = "/etc/ssl/certs/ca-certificates.crt";
    if Path::new(ca).is_file() {
        args.extend(["--build-ca-bundle", ca]);
    }
    Worker::spawn(stack, &args)
}

/// Every entry name of every dependency zip in the cache.
fn cached_names(cache: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "zip") {
            let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
            for i in 0..zip.len() {
                names.push(zip.by_index(i).unwrap().name().unwrap().into_owned());
            }
        }
    }
    names
}

/// The `e_machine` of every `.so` in the cache's dependency zips, by name.
fn shared_objects(cache: &Path) -> Vec<(String, u16)> {
    use std::io::Read;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "zip") {
            let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
            for i in 0..zip.len() {
                let mut f = zip.by_index(i).unwrap();
                let name = f.name().unwrap().into_owned();
                if name.ends_with(".so") || name.contains(".so.") {
                    let mut head = [0u8; 20];
                    f.read_exact(&mut head).unwrap();
                    assert_eq!(&head[..4], b"\x7fELF", "{name}");
                    out.push((name, u16::from_le_bytes([head[18], head[19]])));
                }
            }
        }
    }
    out
}

/// The newest glibc minor version any ELF file of the package needs, from the report's
/// `elf` check (`… glibc ≤ 2.N …`).
fn glibc_minor(report: &serde_json::Value) -> u32 {
    let elf = report["checks"]["elf"].as_str().unwrap();
    let minor = elf
        .split("glibc ≤ 2.")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next());
    minor.unwrap_or_else(|| panic!("no glibc in {elf}")).parse().unwrap()
}

fn has_dist(names: &[String], dist: &str) -> bool {
    names.iter().any(|n| n.starts_with(&format!("{dist}.dist-info/")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_files_deploy_exactly_what_they_lock() {
    let moto = Moto::start();
    let stack = moto.bootstrap("locks", false);
    let aws = Aws::new(&stack.endpoint).await;

    // uv: pyproject.toml + uv.lock, no requirements.txt.
    let cache = tempfile::tempdir().unwrap();
    let worker = online_worker(&stack, cache.path());
    let files = dir_files(&repo_root().join("examples/python-uv"));
    let id = aws.upload(&stack, "apps/uv-app.zip", zip_owned(&files)).await;
    let r = aws.wait_report(&stack, "apps/uv-app.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["dependencies_from"], "uv.lock");
    assert_eq!(r["installer"], "uv");
    assert_eq!(r["checks"]["handler"], "app.handler callable", "{r:#}");
    let names = cached_names(cache.path());
    assert!(
        has_dist(&names, "attrs-24.2.0") && has_dist(&names, "idna-3.10"),
        "the locked versions: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("iniconfig")),
        "no dev group: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("orders_uv")),
        "no self-install: {names:?}"
    );
    // Exactly `uv export --frozen --no-dev --no-editable --no-emit-project`.
    let export = std::process::Command::new(venv_bin("uv"))
        .args([
            "export",
            "--frozen",
            "--no-dev",
            "--no-editable",
            "--no-emit-project",
            "--no-header",
        ])
        .current_dir(repo_root().join("examples/python-uv"))
        .output()
        .unwrap();
    let exported: Vec<String> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#') && l.contains("=="))
        .map(|l| l.split_whitespace().next().unwrap().replace("==", "-"))
        .collect();
    assert!(!exported.is_empty());
    for dist in &exported {
        assert!(
            has_dist(&names, dist),
            "{dist} (from uv export) is in the package: {names:?}"
        );
    }
    drop(worker);

    // Poetry: pyproject.toml + poetry.lock; the main group only, with its hashes.
    let cache = tempfile::tempdir().unwrap();
    let _worker = online_worker(&stack, cache.path());
    let files = dir_files(&repo_root().join("examples/python-poetry"));
    let id = aws.upload(&stack, "apps/poetry-app.zip", zip_owned(&files)).await;
    let r = aws.wait_report(&stack, "apps/poetry-app.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["dependencies_from"], "poetry.lock");
    let names = cached_names(cache.path());
    assert!(
        has_dist(&names, "attrs-24.2.0") && has_dist(&names, "six-1.16.0"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("iniconfig")),
        "no dev group: {names:?}"
    );

    // A lock whose hashes do not match what PyPI serves (every file of six: a wheel or the
    // sdist matching any one listed hash would be accepted) is refused by the installer.
    let mut tampered = files.clone();
    for (name, content) in &mut tampered {
        if name == "poetry.lock" {
            let text = String::from_utf8(content.clone()).unwrap();
            *content = text
                .replace("sha256:8abb2f1d", "sha256:0000000d")
                .replace("sha256:1e61c374", "sha256:00000004")
                .into_bytes();
        }
    }
    let id = aws
        .upload(&stack, "apps/poetry-tampered.zip", zip_owned(&tampered))
        .await;
    let r = aws.wait_report(&stack, "apps/poetry-tampered.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert!(
        r["build_log_tail"].as_str().unwrap().to_lowercase().contains("hash"),
        "{r:#}"
    );

    // A requirements.txt saved by Windows PowerShell: UTF-16 with a byte-order mark.
    let mut utf16 = vec![0xFF, 0xFE];
    for u in "six==1.16.0\r\n".encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    let app: Vec<(&str, &[u8])> = vec![
        (
            "app.py",
            b"import six\ndef handler(e, c):\n    return six.__version__\n",
        ),
        ("requirements.txt", &utf16),
    ];
    let id = aws.upload(&stack, "apps/powershell.zip", zip_of(&app)).await;
    let r = aws.wait_report(&stack, "apps/powershell.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["dependencies_from"], "requirements.txt");
    assert!(has_dist(&cached_names(cache.path()), "six-1.16.0"));

    // An editable line: a permanent error that names it.
    let app: Vec<(&str, &[u8])> = vec![
        ("app.py", b"def handler(e, c):\n    return 1\n"),
        ("requirements.txt", b"six==1.16.0\n-e ./libs/shared\n"),
        (
            "libs/shared/setup.py",
            b"from setuptools import setup\nsetup(name='shared')\n",
        ),
    ];
    let id = aws.upload(&stack, "apps/editable.zip", zip_of(&app)).await;
    let r = aws.wait_report(&stack, "apps/editable.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["error_class"], "permanent");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("line 2") && error.contains("-e ./libs/shared") && error.contains("editable"),
        "{r:#}"
    );

    // A pyproject.toml that cannot be read names the file and the line.
    let app: Vec<(&str, &[u8])> = vec![
        ("app.py", b"def handler(e, c):\n    return 1\n"),
        ("pyproject.toml", b"[project]\nname = \"x\"\ndependencies = [\"six\"\n"),
    ];
    let id = aws.upload(&stack, "apps/badproject.zip", zip_of(&app)).await;
    let r = aws.wait_report(&stack, "apps/badproject.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("pyproject.toml: line"), "{r:#}");

    // PEP 751: a pylock.toml (here the uv example's lock exported in that format).
    let pylock = std::process::Command::new(venv_bin("uv"))
        .args([
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--format",
            "pylock.toml",
        ])
        .current_dir(repo_root().join("examples/python-uv"))
        .output()
        .unwrap();
    assert!(pylock.status.success(), "{}", String::from_utf8_lossy(&pylock.stderr));
    let app: Vec<(&str, &[u8])> = vec![
        (
            "app.py",
            b"import attrs
def handler(e, c):
    return attrs.__version__
",
        ),
        ("pylock.toml", &pylock.stdout),
    ];
    let id = aws.upload(&stack, "apps/pylock.zip", zip_of(&app)).await;
    let r = aws.wait_report(&stack, "apps/pylock.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["dependencies_from"], "pylock.toml");
    assert_eq!(r["checks"]["handler"], "app.handler callable", "{r:#}");

    // pyproject.toml with dependencies and no lock: resolved now, and said so.
    let app: Vec<(&str, &[u8])> = vec![
        ("app.py", b"import six\ndef handler(e, c):\n    return 1\n"),
        (
            "pyproject.toml",
            b"[project]\nname = \"x\"\nversion = \"1\"\ndependencies = [\"six==1.16.0\"]\n",
        ),
    ];
    let id = aws.upload(&stack, "apps/unlocked.zip", zip_of(&app)).await;
    let r = aws.wait_report(&stack, "apps/unlocked.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["dependencies_from"], "pyproject.toml (unlocked)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wheels_fit_the_runtime_not_the_build_host() {
    let moto = Moto::start();
    let stack = moto.bootstrap("platforms", false);
    let aws = Aws::new(&stack.endpoint).await;

    // An arm64 function with a compiled dependency, on this x86_64 worker, in docker mode.
    let cache = tempfile::tempdir().unwrap();
    let worker = online_worker(&stack, cache.path());
    let app: Vec<(&str, &[u8])> = vec![
        (
            "app.py",
            b"import numpy\ndef handler(e, c):\n    return float(numpy.arange(4).sum())\n",
        ),
        ("requirements.txt", b"numpy==2.2.6\n"),
        ("lambda.toml", b"runtime = \"python3.13\"\narchitecture = \"arm64\"\n"),
    ];
    let id = aws.upload(&stack, "apps/arm-numpy.zip", zip_of(&app)).await;
    let r = aws.wait_report(&stack, "apps/arm-numpy.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["checks"]["import"], "skipped (foreign architecture)", "{r:#}");
    assert!(r["checks"]["elf"].as_str().unwrap().contains("aarch64"), "{r:#}");
    let sos = shared_objects(cache.path());
    assert!(sos.len() > 5, "{sos:?}");
    for (name, machine) in &sos {
        assert_eq!(*machine, 0xB7, "{name} is AArch64");
    }
    drop(worker);

    // A python3.11 function (Amazon Linux 2, glibc 2.26) built in an image with glibc 2.36
    // (in the container: wheels first is off here): the wheels are picked for 2.26, not for
    // the image.
    let cache = tempfile::tempdir().unwrap();
    let worker = online_worker_with(&stack, cache.path(), &["--wheels-first", "false"]);
    let app: Vec<(&str, &[u8])> = vec![
        (
            "app.py",
            b"from cryptography.fernet import Fernet\ndef handler(e, c):\n    return Fernet.generate_key().decode()\n",
        ),
        ("requirements.txt", b"cryptography==44.0.0\n"),
        ("lambda.toml", b"runtime = \"python3.11\"\n"),
    ];
    let id = aws.upload(&stack, "apps/crypto311.zip", zip_of(&app)).await;
    let r = aws.wait_report(&stack, "apps/crypto311.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["built_on"], "container", "{r:#}");
    assert!(
        r["checks"]["import"].as_str().unwrap().starts_with("ok (Python 3.11"),
        "{r:#}"
    );
    assert!(glibc_minor(&r) <= 26, "every ELF needs glibc ≤ 2.26: {r:#}");
    let names = cached_names(cache.path());
    assert!(
        names.iter().any(|n| n.starts_with("cryptography-44.0.0.dist-info/")),
        "{names:?}"
    );
    drop(worker);

    // A requirement with no wheel for the target: a permanent error that names it.
    let cache = tempfile::tempdir().unwrap();
    let _worker = online_worker(&stack, cache.path());
    let app: Vec<(&str, &[u8])> = vec![
        ("app.py", b"import psycopg2\ndef handler(e, c):\n    return 1\n"),
        ("requirements.txt", b"psycopg2==2.9.10\n"),
        ("lambda.toml", b"runtime = \"python3.13\"\narchitecture = \"arm64\"\n"),
    ];
    let id = aws.upload(&stack, "apps/nowheel.zip", zip_of(&app)).await;
    let r = aws.wait_report(&stack, "apps/nowheel.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["error_class"], "permanent");
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("`psycopg2`") && error.contains("worker group"), "{r:#}");
    // And a vendored source package for the other architecture.
    let mut native = dir_files(&repo_root().join("examples/python-native"));
    for (name, content) in &mut native {
        if name == "lambda.toml" {
            *content = b"runtime = \"python3.13\"\narchitecture = \"arm64\"\n".to_vec();
        }
    }
    let id = aws.upload(&stack, "apps/arm-native.zip", zip_owned(&native)).await;
    let r = aws.wait_report(&stack, "apps/arm-native.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("./vendor/fastsum"), "{r:#}");
}

/// Docker mode installs wheels on the worker first, from uv's cache kept between jobs, and
/// starts a build container only for what has no wheel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wheels_first_then_a_container_only_when_needed() {
    let moto = Moto::start();
    let stack = moto.bootstrap("wheelsfirst", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let _worker = online_worker(&stack, cache.path());

    // Wheels for everything: no container, and the wheels stay in the worker's uv cache.
    let app: Vec<(&str, &[u8])> = vec![
        (
            "app.py",
            b"from cryptography.fernet import Fernet\nimport six\ndef handler(e, c):\n    return Fernet.generate_key().decode()\n",
        ),
        ("requirements.txt", b"cryptography==44.0.0\nsix==1.16.0\n"),
        ("lambda.toml", b"runtime = \"python3.11\"\n"),
    ];
    let id = aws.upload(&stack, "apps/wheels.zip", zip_of(&app)).await;
    let r = aws.wait_report(&stack, "apps/wheels.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["built_on"], "worker", "{r:#}");
    assert_eq!(r["installer"], "uv", "{r:#}");
    assert!(
        r["checks"]["import"].as_str().unwrap().starts_with("ok (Python 3.11"),
        "the package loads in the runtime's image: {r:#}"
    );
    // The runtime's glibc (2.26 on Amazon Linux 2), not the worker's, picked the wheels.
    assert!(glibc_minor(&r) <= 26, "every ELF needs glibc ≤ 2.26: {r:#}");
    let uv_cache = cache.path().join("uv");
    let cached = walkdir::WalkDir::new(&uv_cache)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("cryptography"))
        .count();
    assert!(cached > 0, "the wheel is kept in {}", uv_cache.display());

    // An upload that carries a virtual environment's layout: its `bin/python` must never run
    // on the worker (uv looks for virtual environments in its working directory when asked
    // for `python3` by name; the worker gives it an absolute path).
    let marker = cache.path().join("ran-the-uploads-python");
    let script = format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display());
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let exec = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    let plain = zip::write::SimpleFileOptions::default();
    for (name, content, options) in [
        ("app.py", &b"import six\ndef handler(e, c):\n    return 1\n"[..], plain),
        ("requirements.txt", b"six==1.16.0\n", plain),
        ("pyvenv.cfg", b"home = /usr/bin\n", plain),
        ("bin/python", script.as_bytes(), exec),
        ("bin/python3", script.as_bytes(), exec),
        (".venv/pyvenv.cfg", b"home = /usr/bin\n", plain),
        (".venv/bin/python", script.as_bytes(), exec),
        (".venv/bin/python3", script.as_bytes(), exec),
    ] {
        use std::io::Write;
        w.start_file(name, options).unwrap();
        w.write_all(content).unwrap();
    }
    let body = w.finish().unwrap().into_inner();
    let id = aws.upload(&stack, "apps/venv-trap.zip", body).await;
    let r = aws.wait_report(&stack, "apps/venv-trap.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["built_on"], "worker", "{r:#}");
    assert!(!marker.exists(), "the upload's bin/python ran on the worker");

    // A range (not an exact version) goes to the container: wheels only could quietly pick an
    // older release where the newest has no wheel for the platform.
    let app: Vec<(&str, &[u8])> = vec![
        ("app.py", b"import six\ndef handler(e, c):\n    return 1\n"),
        ("requirements.txt", b"six>=1.15\n"),
    ];
    let id = aws.upload(&stack, "apps/range.zip", zip_of(&app)).await;
    let r = aws.wait_report(&stack, "apps/range.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["built_on"], "container", "{r:#}");

    // A source-only requirement (docopt publishes no wheel): built in a container.
    let app: Vec<(&str, &[u8])> = vec![
        (
            "app.py",
            b"import docopt, six\ndef handler(e, c):\n    return docopt.__version__\n",
        ),
        ("requirements.txt", b"docopt==0.6.2\nsix==1.16.0\n"),
    ];
    let id = aws.upload(&stack, "apps/sdist.zip", zip_of(&app)).await;
    let r = aws.wait_report(&stack, "apps/sdist.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["built_on"], "container", "{r:#}");
    assert_eq!(r["checks"]["handler"], "app.handler callable", "{r:#}");
    assert!(has_dist(&cached_names(cache.path()), "docopt-0.6.2"));
}
