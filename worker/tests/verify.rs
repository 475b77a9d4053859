//! "Deployed" means "it will start": each kind of package that would fail on its first
//! invocation is refused, permanently and by name, with the earlier version left live; its
//! fixed version deploys. Through the real binary, against moto and the real Docker Engine
//! with the local images (each has its runtime's own interpreter).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

const T: Duration = Duration::from_secs(180);

type Files = Vec<(String, Vec<u8>)>;

fn files(list: &[(&str, &[u8])]) -> Files {
    list.iter().map(|(n, c)| (n.to_string(), c.to_vec())).collect()
}

/// Uploads `good` (deployed), then `bad` (failed, permanent, its error containing `expect`,
/// the function still on the good version), then `fixed` (deployed, a new version).
async fn refused_then_fixed(
    aws: &Aws,
    stack: &Stack,
    name: &str,
    good: &Files,
    bad: &Files,
    expect: &str,
    fixed: &Files,
) -> Value {
    let key = format!("apps/{name}.zip");
    let id = aws.upload(stack, &key, zip_owned(good)).await;
    let r = aws.wait_report(stack, &key, &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{name} (good): {r:#}");
    let live_sha = aws.code_sha256(name).await;
    let versions = aws.versions(name).await;

    let id = aws.upload(stack, &key, zip_owned(bad)).await;
    let r = aws.wait_report(stack, &key, &id, T).await;
    assert_eq!(r["outcome"], "failed", "{name} (bad): {r:#}");
    assert_eq!(r["error_class"], "permanent", "{name}: {r:#}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("would not start") && error.contains(expect),
        "{name}: wanted `{expect}` in: {error}"
    );
    assert!(r["timings_ms"]["verify"].is_u64(), "{name}: {r:#}");
    assert_eq!(
        aws.code_sha256(name).await,
        live_sha,
        "{name}: the earlier package is still live"
    );
    assert_eq!(aws.versions(name).await, versions, "{name}: no version was published");

    let id = aws.upload(stack, &key, zip_owned(fixed)).await;
    let r = aws.wait_report(stack, &key, &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{name} (fixed): {r:#}");
    assert_eq!(r["code_sha256"], aws.code_sha256(name).await.as_str());
    r
}

/// A real x86_64 shared object compiled by the host's gcc.
fn compiled_extension() -> Vec<u8> {
    compile_shared_object("int answer(void) { return 42; }\n")
}

/// The first bytes of a 64-bit arm64 Mach-O dylib, as clang on macOS writes them.
const MACHO_HEADER: &[u8] = &[
    0xcf, 0xfa, 0xed, 0xfe, 0x0c, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

const HANDLER: &[u8] = b"def handler(event, context):\n    return {'ok': True}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_that_would_not_start_are_refused_and_the_live_version_stays() {
    let moto = Moto::start();
    let stack = moto.bootstrap("verify", false);
    let aws = Aws::new(&stack.endpoint).await;
    let worker = Worker::spawn(&stack, &[]);

    // A handler name with a typo, in a pure app with no dependencies.
    let good = files(&[("app.py", HANDLER), ("lambda.toml", b"handler = \"app.handler\"\n")]);
    let bad = files(&[("app.py", HANDLER), ("lambda.toml", b"handler = \"app.hander\"\n")]);
    let r = refused_then_fixed(&aws, &stack, "typo", &good, &bad, "has no `hander`", &good.clone()).await;
    assert_eq!(r["checks"]["handler"], "app.handler callable", "{r:#}");
    assert!(
        r["checks"]["import"].as_str().unwrap().starts_with("ok (Python 3.13"),
        "{r:#}"
    );

    // A handler that imports a package that is not in the zip.
    let bad = files(&[(
        "app.py",
        b"import attrs\ndef handler(e, c):\n    return attrs.__name__\n",
    )]);
    let fixed = files(&[
        (
            "app.py",
            b"import attrs\ndef handler(e, c):\n    return attrs.__name__\n",
        ),
        ("attrs/__init__.py", b"VERSION = 'vendored'\n"),
    ]);
    let good = files(&[("app.py", HANDLER)]);
    refused_then_fixed(&aws, &stack, "missing", &good, &bad, "`attrs`", &fixed).await;

    // A syntax error: the traceback's tail is in the report.
    let bad = files(&[("app.py", b"def handler(event, context)\n    return 1\n")]);
    let key = "apps/syntax.zip";
    let id = aws.upload(&stack, key, zip_owned(&good)).await;
    assert_eq!(aws.wait_report(&stack, key, &id, T).await["outcome"], "deployed");
    let id = aws.upload(&stack, key, zip_owned(&bad)).await;
    let r = aws.wait_report(&stack, key, &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("SyntaxError"), "{r:#}");
    assert!(r["build_log_tail"].as_str().unwrap().contains("app.py"), "{r:#}");

    // A vendored native extension compiled on macOS.
    let bad = files(&[
        ("app.py", b"import fastcodec\ndef handler(e, c):\n    return 1\n"),
        ("fastcodec/__init__.py", b"from ._speedups import *\n"),
        ("fastcodec/_speedups.abi3.so", MACHO_HEADER),
    ]);
    let fixed = files(&[
        ("app.py", b"import fastcodec\ndef handler(e, c):\n    return 1\n"),
        ("fastcodec/__init__.py", b"\n"),
        ("fastcodec/_speedups.abi3.so", &compiled_extension()),
    ]);
    let r = refused_then_fixed(
        &aws,
        &stack,
        "macho",
        &good,
        &bad,
        "`fastcodec/_speedups.abi3.so` is a Mach-O",
        &fixed,
    )
    .await;
    let elf = r["checks"]["elf"].as_str().unwrap();
    assert!(elf.starts_with("1 file, x86_64"), "{r:#}");

    // A CPython extension built for another interpreter (3.11) in a python3.13 function.
    let so = compiled_extension();
    let bad = files(&[("app.py", HANDLER), ("fastsum.cpython-311-x86_64-linux-gnu.so", &so)]);
    let fixed = files(&[("app.py", HANDLER), ("fastsum.cpython-313-x86_64-linux-gnu.so", &so)]);
    let r = refused_then_fixed(&aws, &stack, "abi", &good, &bad, "CPython 3.11 extension", &fixed).await;
    assert!(r["checks"]["elf"].as_str().unwrap().contains("cpython-313"), "{r:#}");

    // An x86_64 extension in an arm64 function: the audit runs even though nothing of that
    // architecture can be imported here.
    let arm_toml: &[u8] = b"architecture = \"arm64\"\n";
    let bad = files(&[("app.py", HANDLER), ("lambda.toml", arm_toml), ("native.so", &so)]);
    let fixed = files(&[("app.py", HANDLER), ("lambda.toml", arm_toml)]);
    let good_arm = fixed.clone();
    refused_then_fixed(&aws, &stack, "arch", &good_arm, &bad, "built for X86_64", &fixed).await;

    // A provided.al2023 bootstrap saved with CRLF line endings.
    let boot_toml: &[u8] = b"runtime = \"provided.al2023\"\n";
    let good = files(&[("bootstrap", b"#!/bin/sh\necho ok\n"), ("lambda.toml", boot_toml)]);
    let bad = files(&[("bootstrap", b"#!/bin/sh\r\necho ok\r\n"), ("lambda.toml", boot_toml)]);
    let r = refused_then_fixed(&aws, &stack, "crlf", &good, &bad, "carriage return", &good.clone()).await;
    assert_eq!(r["checks"]["bootstrap"], "script, #!/bin/sh", "{r:#}");

    // One per configured image (python3.13, python3.11, nodejs20.x), started at start-up and
    // reused by every job.
    assert_eq!(containers_of(worker.child.id(), "verifier"), 3);
    assert_eq!(build_containers_left(worker.child.id()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_skips_the_build_but_not_verification() {
    let moto = Moto::start();
    let stack = moto.bootstrap("verifycache", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let _worker = spawn_builder(&stack, cache.path(), &[]);
    let native = dir_files(&repo_root().join("examples/python-native"));
    let key = "apps/native.zip";
    let id = aws.upload(&stack, key, zip_owned(&native)).await;
    let r = aws.wait_report(&stack, key, &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["dependencies"], "built");
    let elf = r["checks"]["elf"].as_str().unwrap();
    assert!(
        elf.contains("cpython-313"),
        "the example ships an extension its runtime imports: {r:#}"
    );
    assert!(
        r["checks"]["import"].as_str().unwrap().starts_with("ok (Python 3.13"),
        "{r:#}"
    );
    let live = aws.code_sha256("native").await;

    // A code-only change with a syntax error: the dependencies come from the cache, and the
    // check still runs.
    let mut broken = native.clone();
    for (name, content) in &mut broken {
        if name == "app.py" {
            content.extend_from_slice(b"\ndef oops(:\n");
        }
    }
    let id = aws.upload(&stack, key, zip_owned(&broken)).await;
    let r = aws.wait_report(&stack, key, &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["error_class"], "permanent");
    assert!(r["error"].as_str().unwrap().contains("SyntaxError"), "{r:#}");
    assert_eq!(aws.code_sha256("native").await, live, "the earlier version stays live");

    let mut fixed = native.clone();
    for (name, content) in &mut fixed {
        if name == "app.py" {
            content.extend_from_slice(b"\n# v2\n");
        }
    }
    let id = aws.upload(&stack, key, zip_owned(&fixed)).await;
    let r = aws.wait_report(&stack, key, &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["dependencies"], "cache-local", "the build was skipped: {r:#}");
    assert_eq!(
        r["checks"]["handler"], "app.handler callable",
        "but not verification: {r:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_from_finder_and_windows_are_packaged_as_meant() {
    let moto = Moto::start();
    let stack = moto.bootstrap("hygiene", false);
    let aws = Aws::new(&stack.endpoint).await;
    let _worker = Worker::spawn(&stack, &[]);

    // macOS Finder's "Compress": resource forks and .DS_Store beside the app.
    let clean: &[(&str, &[u8])] = &[("app.py", HANDLER)];
    let finder: &[(&str, &[u8])] = &[
        ("app.py", HANDLER),
        ("__MACOSX/._app.py", b"\x00\x05\x16\x07AppleDouble"),
        ("._app.py", b"\x00\x05\x16\x07AppleDouble"),
        (".DS_Store", b"\x00\x00\x00\x01Bud1"),
    ];
    let id = aws.upload(&stack, "apps/finder.zip", zip_of(finder)).await;
    let r = aws.wait_report(&stack, "apps/finder.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(
        r["dropped_files"],
        serde_json::json!(["__MACOSX/._app.py", "._app.py", ".DS_Store"])
    );
    assert_eq!(
        r["code_sha256"],
        expected_sha(clean).as_str(),
        "none of it is in the package"
    );

    // Written on Windows with `\` separators, a handler in a folder without __init__.py (a
    // namespace package), named by path the way Lambda allows.
    let windows: &[(&str, &[u8])] = &[
        ("src\\orders\\app.py", HANDLER),
        (
            "lambda.toml",
            b"runtime = \"python3.13\"\nhandler = \"src/orders/app.handler\"\n",
        ),
    ];
    let id = aws.upload(&stack, "apps/windows.zip", zip_of(windows)).await;
    let r = aws.wait_report(&stack, "apps/windows.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["checks"]["handler"], "src/orders/app.handler callable", "{r:#}");
    // Traversal is still refused after the conversion.
    let evil: &[(&str, &[u8])] = &[("app.py", HANDLER), ("..\\..\\evil.py", b"x")];
    let id = aws.upload(&stack, "apps/evil.zip", zip_of(evil)).await;
    let r = aws.wait_report(&stack, "apps/evil.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("`..`"), "{r:#}");

    // The folder zipped instead of its contents.
    let nested: &[(&str, &[u8])] = &[
        ("orders-api/app.py", HANDLER),
        ("orders-api/lambda.toml", b"memory = 256\n"),
    ];
    let id = aws.upload(&stack, "apps/nested.zip", zip_of(nested)).await;
    let r = aws.wait_report(&stack, "apps/nested.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["error_class"], "permanent");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("`orders-api/`") && error.contains("zip the folder's contents"),
        "{r:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_handlers_load_as_the_node_runtime_loads_them() {
    let moto = Moto::start();
    let stack = moto.bootstrap("verifynode", false);
    let aws = Aws::new(&stack.endpoint).await;
    let _worker = Worker::spawn(&stack, &[]);
    let toml: &[u8] = b"runtime = \"nodejs20.x\"\n";
    // (function name, files, the problem a failure names; None: deploys)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        // An ES module by package.json "type", with top-level await.
        (
            "esm",
            vec![
                ("index.js", b"const config = await Promise.resolve({ greeting: 'hi' });\nexport const handler = async () => config.greeting;\n"),
                ("package.json", br#"{"name": "esm", "type": "module"}"#),
                ("lambda.toml", toml),
            ],
            None,
        ),
        // CommonJS, .cjs.
        ("cjs", vec![("index.cjs", b"exports.handler = async () => 1;\n"), ("lambda.toml", toml)], None),
        // A typo in the export.
        (
            "nodetypo",
            vec![("index.mjs", b"export const handlr = async () => 1;\n"), ("lambda.toml", toml)],
            Some("has no export `handler`"),
        ),
        // An export that is not a function.
        (
            "notfn",
            vec![("index.js", b"exports.handler = 42;\n"), ("lambda.toml", toml)],
            Some("not a function"),
        ),
    ];
    for (name, app, problem) in cases {
        let key = format!("apps/{name}.zip");
        let id = aws.upload(&stack, &key, zip_of(&app)).await;
        let r = aws.wait_report(&stack, &key, &id, T).await;
        match problem {
            None => {
                assert_eq!(r["outcome"], "deployed", "{name}: {r:#}");
                assert!(
                    r["checks"]["import"].as_str().unwrap().starts_with("ok (Node.js 20"),
                    "{r:#}"
                );
            }
            Some(problem) => {
                assert_eq!(r["outcome"], "failed", "{name}: {r:#}");
                assert!(r["error"].as_str().unwrap().contains(problem), "{name}: {r:#}");
                assert!(aws.lambda.get_function().function_name(name).send().await.is_err());
            }
        }
    }
}

#[test]
fn an_image_that_is_not_the_runtimes_interpreter_stops_the_worker_at_start() {
    // python3.13 mapped to the Debian bookworm image, which has Python 3.11.
    let moto = Moto::start();
    let stack = moto.bootstrap("mismatch", false);
    let image = format!("python3.13={}", local_image(PYTHON311_IMAGE));
    let mut worker = Worker::spawn(&stack, &["--build-image", &image]);
    assert_eq!(worker.wait_exit(Duration::from_secs(120)), Some(64), "{}", worker.log());
    let log = worker.log();
    assert!(
        log.contains("Python 3.11") && log.contains("python3.13") && log.contains(PYTHON311_IMAGE),
        "{log}"
    );
    assert_eq!(
        containers_of(worker.child.id(), "verifier"),
        0,
        "the probe container is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_containers_end_with_their_worker() {
    let moto = Moto::start();
    let stack = moto.bootstrap("verifierlife", false);
    let aws = Aws::new(&stack.endpoint).await;

    // SIGTERM: the worker removes its verifiers before it exits.
    let mut worker = Worker::spawn(&stack, &[]);
    let id = aws
        .upload(&stack, "apps/life.zip", zip_of(&[("app.py", HANDLER)]))
        .await;
    assert_eq!(
        aws.wait_report(&stack, "apps/life.zip", &id, T).await["outcome"],
        "deployed"
    );
    let pid = worker.child.id();
    assert!(containers_of(pid, "verifier") > 0);
    assert_verifiers_locked_down(pid).await;
    worker.signal("TERM");
    assert_eq!(worker.wait_exit(Duration::from_secs(60)), Some(0), "{}", worker.log());
    assert_eq!(containers_of(pid, "verifier"), 0, "removed at shutdown");

    // SIGKILL leaves them running; the next worker on the host reaps them.
    let killed = Worker::spawn(&stack, &[]);
    let pid = killed.child.id();
    eventually(T, "the verifiers to start", || async move {
        containers_of(pid, "verifier") > 0
    })
    .await;
    killed.signal("KILL");
    drop(killed);
    assert!(containers_of(pid, "verifier") > 0, "a SIGKILL leaves them behind");
    let _next = Worker::spawn(&stack, &[]);
    eventually(T, "the orphaned verifiers to be reaped", || async move {
        containers_of(pid, "verifier") == 0
    })
    .await;
}

/// Every verifier of worker `pid`: runs as nobody (who owns none of the package's files), off
/// the network, with a read-only root, no capabilities, no privilege escalation, limits, an
/// init, and nothing from the host but the staging directory, read-only.
async fn assert_verifiers_locked_down(pid: u32) {
    let (docker, list) = worker_containers(pid, "verifier", true).await;
    assert!(!list.is_empty());
    for id in list {
        let info = docker.inspect_container(&id, None).await.unwrap();
        let config = info.config.unwrap();
        let hc = info.host_config.unwrap();
        assert_eq!(config.user.as_deref(), Some("65534:65534"));
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.cap_drop.clone().unwrap_or_default(), ["ALL"]);
        assert!(hc
            .security_opt
            .iter()
            .flatten()
            .any(|o| o.starts_with("no-new-privileges")));
        assert_eq!(hc.pids_limit, Some(128));
        assert!(hc.memory.unwrap_or(0) > 0);
        assert_eq!(hc.init, Some(true));
        assert_eq!(hc.privileged, Some(false));
        let binds = bind_mounts(&hc);
        assert_eq!(binds.len(), 1, "{binds:?}");
        assert!(
            binds[0].contains("auto-lambda-verify-") && binds[0].ends_with(":/pkgs:ro"),
            "{binds:?}"
        );
    }
    // The files it reads belong to the worker's user (the test's), not to nobody.
    use std::os::unix::fs::MetadataExt;
    assert_ne!(std::fs::metadata("/proc/self").unwrap().uid(), 65534);
}
