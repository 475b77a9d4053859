//! Native dependencies built in a real build container (the local Debian-based test image,
//! made by dev/build-image.sh), through the real binary against moto.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use support::*;

const T: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_extension_is_compiled_imported_and_cached() {
    let moto = Moto::start();
    let stack = moto.bootstrap("native", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let worker = spawn_builder(&stack, cache.path(), &[]);

    let mut files = dir_files(&repo_root().join("examples/python-native"));
    let key = "apps/native.zip";
    let id = aws.upload(&stack, key, zip_owned(&files)).await;
    let cold = aws.wait_report(&stack, key, &id, T).await;
    assert_eq!(cold["outcome"], "deployed", "{cold:#}");
    assert_eq!(cold["dependencies"], "built");
    assert_eq!(cold["dependencies_from"], "requirements.txt");
    assert_eq!(cold["installer"], "uv");
    assert!(
        cold["build_log_tail"].as_str().unwrap().contains("+ fastsum==1.0.0"),
        "{cold:#}"
    );
    let deps = cached_deps(cache.path());
    let names = zip_names(&deps);
    let so = names
        .iter()
        .find(|n| n.starts_with("fastsum") && n.ends_with(".so"))
        .unwrap_or_else(|| panic!("no compiled extension in {names:?}"));
    let elf = zip_entry(&deps, so);
    assert_eq!(&elf[..4], b"\x7fELF", "{so} is an ELF object");
    assert_eq!(elf[4], 2, "64-bit");
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 0x3e, "e_machine is x86-64");
    // Lambda runs exactly the app plus those built dependencies.
    assert_eq!(aws.code_sha256("native").await, expected_sha_with_deps(&files, &deps));

    // A code-only change: the dependencies come from the cache, no container runs.
    for (name, content) in &mut files {
        if name == "app.py" {
            content.extend_from_slice(b"\n# v2\n");
        }
    }
    let id2 = aws.upload(&stack, key, zip_owned(&files)).await;
    let warm = aws.wait_report(&stack, key, &id2, T).await;
    assert_eq!(warm["outcome"], "deployed", "{warm:#}");
    assert_eq!(warm["dependencies"], "cache-local");
    let (cold_ms, warm_ms) = (
        cold["timings_ms"]["build"].as_u64().unwrap(),
        warm["timings_ms"]["build"].as_u64().unwrap(),
    );
    assert!(
        warm_ms < cold_ms,
        "warm build {warm_ms} ms should beat cold {cold_ms} ms"
    );
    assert_eq!(cached_deps(cache.path()), deps, "no new build");
    assert_eq!(
        aws.code_sha256("native").await,
        expected_sha_with_deps(&files, &deps),
        "the cached entries went into the new package"
    );
    assert_eq!(
        build_containers_left(worker.child.id()),
        0,
        "every build container was removed"
    );

    // The same input under another name: a byte-identical package.
    let id3 = aws.upload(&stack, "apps/native-copy.zip", zip_owned(&files)).await;
    let copy = aws.wait_report(&stack, "apps/native-copy.zip", &id3, T).await;
    assert_eq!(copy["code_sha256"], warm["code_sha256"], "same input, same bytes");
    assert_eq!(aws.code_sha256("native-copy").await, aws.code_sha256("native").await);
    drop(worker);
}

/// The one dependency zip in the local cache.
fn cached_deps(dir: &std::path::Path) -> std::path::PathBuf {
    let zips: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    assert_eq!(zips.len(), 1, "{zips:?}");
    zips[0].clone()
}

fn zip_entry(path: &std::path::Path, name: &str) -> Vec<u8> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    zip.by_name(name).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn zip_names(path: &std::path::Path) -> Vec<String> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().unwrap().into_owned())
        .collect()
}

/// The CodeSha256 of the app's files merged with a dependency zip, built here independently.
fn expected_sha_with_deps(files: &[(String, Vec<u8>)], deps: &std::path::Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    auto_lambda_worker::package::build_with_deps(dir.path(), Some(deps), &out.path().join("p.zip"))
        .unwrap()
        .code_sha256
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_builds_are_permanent_failures_with_the_log() {
    let moto = Moto::start();
    let stack = moto.bootstrap("broken", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let worker = spawn_builder(&stack, cache.path(), &[]);

    // A C file that does not compile.
    let mut bad_c = dir_files(&repo_root().join("examples/python-native"));
    for (name, content) in &mut bad_c {
        if name.ends_with("fastsum.c") {
            content.extend_from_slice(b"\nthis is not C;\n");
        }
    }
    let id = aws.upload(&stack, "apps/badc.zip", zip_owned(&bad_c)).await;
    let r = aws.wait_report(&stack, "apps/badc.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["error_class"], "permanent");
    assert!(
        r["build_log_tail"].as_str().unwrap().contains("error"),
        "the compiler's error is in the report: {r:#}"
    );
    let log_uri = r["build_log"].as_str().expect("a link to the whole build log");
    assert_eq!(
        log_uri,
        format!("s3://{}/status/apps/badc.zip/{id}.log", stack.bucket),
        "stored beside the report"
    );
    let log = aws.read_s3_uri(log_uri).await;
    assert!(log.ends_with(r["build_log_tail"].as_str().unwrap()), "{log}");

    // A build that says more than the report keeps: the report has the last 16 KiB, the
    // stored log all of it, from the first line to the last.
    let chatty = "import sys\nfor i in range(4000):\n    print(f'LINE-{i:05d} ' + 'x' * 60, file=sys.stderr)\nraise SystemExit('giving up after LINE-03999')";
    let id = aws
        .upload(&stack, "apps/chatty.zip", zip_owned(&app_with_setup(chatty)))
        .await;
    let r = aws.wait_report(&stack, "apps/chatty.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    let tail = r["build_log_tail"].as_str().unwrap();
    assert!(tail.len() <= 16 * 1024 && tail.contains("LINE-03999"), "{tail}");
    assert!(!tail.contains("LINE-00000"), "the report keeps only the tail");
    let log = aws.read_s3_uri(r["build_log"].as_str().unwrap()).await;
    assert!(log.len() > 4000 * 70, "{} bytes", log.len());
    for line in ["LINE-00000", "LINE-02000", "LINE-03999"] {
        assert!(log.contains(line), "{line} missing from the stored log");
    }

    // Builds, but the handler's module does not import: verification catches it.
    let mut bad_import = dir_files(&repo_root().join("examples/python-native"));
    for (name, content) in &mut bad_import {
        if name == "app.py" {
            *content = b"import fastsum\nimport not_installed_anywhere\ndef handler(e, c):\n    return 1\n".to_vec();
        }
    }
    let id = aws.upload(&stack, "apps/badimport.zip", zip_owned(&bad_import)).await;
    let r = aws.wait_report(&stack, "apps/badimport.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("would not start") && error.contains("`not_installed_anywhere`"),
        "{r:#}"
    );
    assert_eq!(r["error_class"], "permanent");
    assert!(
        r["build_log_tail"].as_str().unwrap().contains("ModuleNotFoundError"),
        "the traceback is in the report: {r:#}"
    );
    assert!(
        aws.lambda
            .get_function()
            .function_name("badimport")
            .send()
            .await
            .is_err(),
        "nothing deployed"
    );

    // An architecture this host cannot build for.
    let mut arm = dir_files(&repo_root().join("examples/python-native"));
    arm.push((
        "lambda.toml".into(),
        b"runtime = \"python3.13\"\narchitecture = \"arm64\"\n".to_vec(),
    ));
    arm.retain(|(n, c)| n != "lambda.toml" || c.starts_with(b"runtime = \"python3.13\"\narch"));
    let id = aws.upload(&stack, "apps/armapp.zip", zip_owned(&arm)).await;
    let r = aws.wait_report(&stack, "apps/armapp.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    // Compiling for another architecture needs a worker of it: the vendored C source is named.
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("./vendor/fastsum") && error.contains("worker group"),
        "{r:#}"
    );
    assert_eq!(build_containers_left(worker.child.id()), 0);
}

/// An app whose dependency's setup.py runs `body` (Python) when pip builds it.
fn app_with_setup(body: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("app.py".into(), b"def handler(e, c):\n    return 1\n".to_vec()),
        ("requirements.txt".into(), b"./vendor/pkg\n".to_vec()),
        (
            "vendor/pkg/setup.py".into(),
            format!("{body}\nfrom setuptools import setup\nsetup(name='pkg', version='1.0', py_modules=[])\n")
                .into_bytes(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_and_escaping_builds_are_stopped() {
    let moto = Moto::start();
    let stack = moto.bootstrap("runaway", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let worker = spawn_builder(&stack, cache.path(), &["--build-timeout-secs", "4"]);

    // A build that never ends is killed at the timeout.
    let id = aws
        .upload(
            &stack,
            "apps/forever.zip",
            zip_owned(&app_with_setup("while True: pass")),
        )
        .await;
    let r = aws.wait_report(&stack, "apps/forever.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["error_class"], "permanent");
    assert!(r["error"].as_str().unwrap().contains("did not finish within"), "{r:#}");
    assert_eq!(build_containers_left(worker.child.id()), 0, "docker ps -a is clean");

    // A build that writes outside /out fails: the source and the root are read-only.
    for (name, target) in [("escape-src", "/src/pwned"), ("escape-root", "/usr/lib/pwned")] {
        let body = format!("open('{target}', 'w').write('x')");
        let key = format!("apps/{name}.zip");
        let id = aws.upload(&stack, &key, zip_owned(&app_with_setup(&body))).await;
        let r = aws.wait_report(&stack, &key, &id, T).await;
        assert_eq!(r["outcome"], "failed", "{r:#}");
        assert!(
            r["build_log_tail"].as_str().unwrap().contains("Read-only file system"),
            "{r:#}"
        );
    }
    assert_eq!(build_containers_left(worker.child.id()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_container_is_locked_down() {
    let moto = Moto::start();
    let stack = moto.bootstrap("lockdown", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let worker = spawn_builder(&stack, cache.path(), &[]);
    let id = aws
        .upload(
            &stack,
            "apps/inspected.zip",
            zip_owned(&app_with_setup("import time; time.sleep(5)")),
        )
        .await;

    // Inspect the running build container through the Engine API.
    let deadline = std::time::Instant::now() + T;
    let (docker, running) = loop {
        assert!(std::time::Instant::now() < deadline, "no build container appeared");
        let (docker, running) = worker_containers(worker.child.id(), "build", false).await;
        if !running.is_empty() {
            break (docker, running);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let info = docker.inspect_container(&running[0], None).await.unwrap();
    let config = info.config.unwrap();
    let hc = info.host_config.unwrap();
    let user = config.user.unwrap_or_default();
    assert!(
        !user.is_empty() && !user.starts_with("0") && !user.starts_with("root"),
        "non-root user, got {user:?}"
    );
    assert_eq!(hc.cap_drop.clone().unwrap_or_default(), ["ALL"]);
    assert!(hc
        .security_opt
        .iter()
        .flatten()
        .any(|o| o.starts_with("no-new-privileges")));
    assert_eq!(hc.readonly_rootfs, Some(true));
    assert_eq!(hc.pids_limit, Some(512));
    assert_eq!(hc.memory, Some(2048 << 20));
    assert_eq!(hc.memory_swap, Some(2048 << 20), "no swap beyond the memory limit");
    assert_eq!(hc.nano_cpus, Some(2_000_000_000));
    assert_eq!(hc.network_mode.as_deref(), Some("none"));
    assert_eq!(hc.privileged, Some(false));
    let binds = bind_mounts(&hc);
    assert!(binds.iter().any(|b| b.ends_with(":/src:ro")), "{binds:?}");
    assert!(binds.iter().any(|b| b.ends_with(":/out:rw")), "{binds:?}");
    // Besides: the generated requirements and the uv binary, both read-only.
    assert!(binds.iter().any(|b| b.ends_with(":/in:ro")), "{binds:?}");
    assert!(
        binds.iter().any(|b| b.ends_with(":/opt/auto-lambda/uv:ro")),
        "{binds:?}"
    );
    assert_eq!(binds.len(), 4, "nothing else from the host is mounted: {binds:?}");
    assert!(hc.tmpfs.unwrap_or_default().contains_key("/tmp"));

    let r = aws.wait_report(&stack, "apps/inspected.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_cache_starts_a_fresh_instance_warm() {
    let moto = Moto::start();
    let stack = moto.bootstrap("shared", false);
    let aws = Aws::new(&stack.endpoint).await;
    let files = dir_files(&repo_root().join("examples/python-native"));

    // The first instance builds and shares the dependencies under cache/ in the bucket.
    let first_cache = tempfile::tempdir().unwrap();
    let first = spawn_builder(&stack, first_cache.path(), &["--cache-bucket", &stack.bucket]);
    let id = aws.upload(&stack, "apps/shared-a.zip", zip_owned(&files)).await;
    let r = aws.wait_report(&stack, "apps/shared-a.zip", &id, T).await;
    assert_eq!(r["dependencies"], "built", "{r:#}");
    drop(first);
    // A killed worker's last long poll (1 s here) is still open on the server and would take
    // the next message into a dead connection, hiding it for the visibility timeout (60 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let shared = aws
        .s3
        .list_objects_v2()
        .bucket(&stack.bucket)
        .prefix("cache/")
        .send()
        .await
        .unwrap();
    assert_eq!(shared.contents().len(), 1, "one shared dependency zip");

    // A fresh instance (empty local cache) gets them from S3: no container runs.
    let second_cache = tempfile::tempdir().unwrap();
    let second = spawn_builder(&stack, second_cache.path(), &["--cache-bucket", &stack.bucket]);
    let id = aws.upload(&stack, "apps/shared-b.zip", zip_owned(&files)).await;
    let r = aws.wait_report(&stack, "apps/shared-b.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["dependencies"], "cache-shared", "{r:#}");
    assert_eq!(
        aws.code_sha256("shared-b").await,
        aws.code_sha256("shared-a").await,
        "same input, same package"
    );
    assert!(!second.log().contains("build container"), "{}", second.log());
}

/// A worker on a host whose Docker is unreachable, installing wheels with the venv's Python,
/// with its cache in `cache`, plus `extra` flags.
fn spawn_without_docker(stack: &Stack, cache: &std::path::Path, extra: &[&str]) -> Worker {
    let python = venv_bin("python");
    let mut cmd = worker_command(stack);
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let mut args = vec![
        "--build-python",
        python.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Worker::spawn_with(&mut cmd, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_platform_mode_fetches_manylinux_wheels_without_docker() {
    // Hosts without Docker: pip on the host fetches prebuilt wheels for Lambda's platform.
    // This needs PyPI (reachable from this project's machines); Docker is made unreachable.
    let moto = Moto::start();
    let stack = moto.bootstrap("pipplat", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    // The old name of the mode still works.
    let _worker = spawn_without_docker(&stack, cache.path(), &["--build-mode", "pip-platform"]);
    let files: Vec<(&str, &[u8])> = vec![
        ("app.py", b"import six\ndef handler(e, c):\n    return six.PY3\n"),
        ("requirements.txt", b"six==1.16.0\n"),
        ("lambda.toml", b"runtime = \"python3.11\"\narchitecture = \"arm64\"\n"),
    ];
    let id = aws.upload(&stack, "apps/wheels.zip", zip_of(&files)).await;
    let r = aws.wait_report(&stack, "apps/wheels.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["dependencies"], "built");
    let deps = cached_deps(cache.path());
    let names = zip_names(&deps);
    assert!(names.contains(&"six.py".to_owned()), "{names:?}");
    let f = aws.lambda.get_function().function_name("wheels").send().await.unwrap();
    assert_eq!(
        f.configuration().unwrap().architectures()[0].as_str(),
        "arm64",
        "arm64 built on an x86_64 host"
    );
    assert_eq!(r["installer"], "uv", "{r:#}");
    assert_eq!(
        r["checks"]["import"], "skipped (no Docker in --build-mode wheels)",
        "{r:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pip_finds_wheels_of_every_manylinux_tag_the_runtime_accepts() {
    // pip does not widen one --platform to older manylinux tags: numpy's aarch64 wheels say
    // manylinux_2_28, and a python3.13 (glibc 2.34) function must still get them.
    let moto = Moto::start();
    let stack = moto.bootstrap("pipwheels", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let _worker = spawn_without_docker(
        &stack,
        cache.path(),
        &["--build-mode", "wheels", "--python-installer", "pip"],
    );
    let files: Vec<(&str, &[u8])> = vec![
        ("app.py", b"import numpy\ndef handler(e, c):\n    return 1\n"),
        ("requirements.txt", b"numpy==2.2.6\n"),
        ("lambda.toml", b"runtime = \"python3.13\"\narchitecture = \"arm64\"\n"),
    ];
    let id = aws.upload(&stack, "apps/pipnumpy.zip", zip_of(&files)).await;
    let r = aws.wait_report(&stack, "apps/pipnumpy.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["installer"], "pip");
    let elf = r["checks"]["elf"].as_str().unwrap();
    assert!(elf.contains("aarch64") && elf.contains("cpython-313"), "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_dependencies_installed_with_npm_ci() {
    // npm ci offline: the dependency is vendored (`file:`), so no registry is needed.
    let node_image = local_image(NODE_IMAGE);
    let moto = Moto::start();
    let stack = moto.bootstrap("npm", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let image = format!("nodejs20.x={node_image}");
    let _worker = Worker::spawn(
        &stack,
        &[
            "--build-image",
            &image,
            "--build-network",
            "none",
            "--cache-dir",
            cache.path().to_str().unwrap(),
        ],
    );
    let lock = br#"{"name": "node-deps", "version": "1.0.0", "lockfileVersion": 3, "requires": true, "packages": {
        "": {"name": "node-deps", "version": "1.0.0", "dependencies": {"greet": "file:vendor/greet"}},
        "node_modules/greet": {"resolved": "vendor/greet", "link": true},
        "vendor/greet": {"version": "1.0.0"}}}"#;
    let files: Vec<(&str, &[u8])> = vec![
        ("index.js", b"const greet = require('greet');\nexports.handler = async () => greet('node');\n"),
        ("package.json", br#"{"name": "node-deps", "version": "1.0.0", "private": true, "dependencies": {"greet": "file:vendor/greet"}}"#),
        ("package-lock.json", lock),
        ("vendor/greet/package.json", br#"{"name": "greet", "version": "1.0.0", "main": "index.js"}"#),
        ("vendor/greet/index.js", b"module.exports = (n) => `hello, ${n}`;\n"),
    ];
    let id = aws.upload(&stack, "apps/node-deps.zip", zip_of(&files)).await;
    let r = aws.wait_report(&stack, "apps/node-deps.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["dependencies"], "built");
    let names = zip_names(&cached_deps(cache.path()));
    assert!(names.contains(&"node_modules/greet/index.js".to_owned()), "{names:?}");

    // A handler whose dependency is missing fails verification and is not deployed.
    let broken: Vec<(&str, &[u8])> = vec![
        ("index.js", b"const x = require('not-installed');\nexports.handler = async () => x;\n"),
        ("package.json", br#"{"name": "node-deps", "version": "1.0.0", "private": true, "dependencies": {"greet": "file:vendor/greet"}}"#),
        ("package-lock.json", lock),
        ("vendor/greet/package.json", br#"{"name": "greet", "version": "1.0.0", "main": "index.js"}"#),
        ("vendor/greet/index.js", b"module.exports = (n) => n;\n"),
    ];
    let id = aws.upload(&stack, "apps/node-broken.zip", zip_of(&broken)).await;
    let r = aws.wait_report(&stack, "apps/node-broken.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("`not-installed`"), "{r:#}");
    assert!(aws
        .lambda
        .get_function()
        .function_name("node-broken")
        .send()
        .await
        .is_err());
}
