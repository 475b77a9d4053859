//! Faults, each in a bounded loop that stops by itself: an AWS outage in the middle of a
//! burst, SIGKILL at random points, workers racing on one function, a full disk. Through the
//! real binary against moto. Nothing may be lost, deployed twice, or deployed out of order.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::*;

const T: Duration = Duration::from_secs(120);

fn app(version: u32) -> Vec<(String, Vec<u8>)> {
    vec![(
        "app.py".into(),
        format!("def handler(e, c):\n    return {version}\n").into_bytes(),
    )]
}

/// A small deterministic RNG (xorshift), seeded from the clock and printed, so a failing run
/// can be replayed.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("rng seed: {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Checks a function's published versions: no package twice, and in upload order. `order`
/// maps each upload's CodeSha256 to its position. Returns the number of versions.
async fn assert_versions_in_order(aws: &Aws, function: &str, order: &HashMap<String, usize>) -> usize {
    let out = aws
        .lambda
        .list_versions_by_function()
        .function_name(function)
        .send()
        .await
        .unwrap();
    let mut seen = Vec::new();
    for v in out.versions().iter().filter(|v| v.version() != Some("$LATEST")) {
        let sha = v.code_sha256().unwrap().to_owned();
        let pos = *order
            .get(&sha)
            .unwrap_or_else(|| panic!("version {:?} runs a package nobody uploaded", v.version()));
        assert!(!seen.contains(&pos), "upload {pos} deployed twice");
        if let Some(last) = seen.last() {
            assert!(
                pos > *last,
                "upload {pos} deployed after the newer upload {last}: a stale overwrite"
            );
        }
        seen.push(pos);
    }
    seen.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_outage_mid_burst_loses_nothing() {
    let moto = Moto::start();
    let stack = moto.bootstrap("outage", false);
    let aws = Aws::new(&stack.endpoint).await;
    let mut worker = Worker::spawn(&stack, &["--concurrency", "2"]);

    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push((
            format!("apps/burst{i}.zip"),
            aws.upload(&stack, &format!("apps/burst{i}.zip"), zip_owned(&app(i)))
                .await,
        ));
    }
    // Some are in hand when AWS goes quiet for 30 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    moto.pause();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker never exits during an outage"
    );
    moto.resume();

    let started = Instant::now();
    for (i, (key, id)) in ids.iter().enumerate() {
        let r = aws.wait_report(&stack, key, id, T).await;
        assert_eq!(r["outcome"], "deployed", "upload {i}: {r:#}");
    }
    eprintln!(
        "outage: all 10 uploads deployed {:.1} s after AWS came back",
        started.elapsed().as_secs_f64()
    );
    eventually(T, "queue settled", || async {
        aws.queue_counts(&stack.queue_url).await == (0, 0)
    })
    .await;
    assert_eq!(
        aws.queue_counts(&stack.dlq_url).await,
        (0, 0),
        "nothing lost to the DLQ"
    );
    assert!(worker.child.try_wait().unwrap().is_none());
    worker.signal("TERM");
    assert_eq!(worker.wait_exit(Duration::from_secs(30)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_ten_times() {
    let moto = Moto::start();
    let stack = moto.bootstrap("killer", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let image = format!("python3.13={}", test_build_image());
    let args = [
        "--build-image",
        &image,
        "--build-network",
        "none",
        "--visibility-timeout-secs",
        "6",
        "--cache-dir",
        cache.path().to_str().unwrap(),
    ];
    let mut rng = Rng::from_clock();
    let key = "apps/victim.zip";
    let mut ids = Vec::new();
    let mut worker = Worker::spawn(&stack, &args);
    for round in 0..10u32 {
        // Each version carries a dependency that takes a second to build: kills land mid-build,
        // mid-deploy or between jobs.
        let mut files = app(round);
        files.push(("requirements.txt".into(), b"./vendor/slow\n".to_vec()));
        files.push(("vendor/slow/setup.py".into(), format!("import time\ntime.sleep(1)\nfrom setuptools import setup\nsetup(name='slow', version='1.{round}', py_modules=[])\n").into_bytes()));
        ids.push(aws.upload(&stack, key, zip_owned(&files)).await);
        tokio::time::sleep(Duration::from_millis(rng.below(2500))).await;
        worker.signal("KILL");
        worker.wait_exit(Duration::from_secs(5));
        worker = Worker::spawn(&stack, &args);
    }
    // The last worker is left alone to finish whatever reappears.
    let mut order = HashMap::new();
    let mut outcomes = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let r = aws.wait_report(&stack, key, id, Duration::from_secs(180)).await;
        *outcomes.entry(r["outcome"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        if let Some(sha) = r["code_sha256"].as_str() {
            order.insert(sha.to_owned(), i);
        }
    }
    eprintln!("sigkill x10 outcomes: {outcomes:?}");
    let last = aws.wait_report(&stack, key, ids.last().unwrap(), T).await;
    assert_eq!(last["outcome"], "deployed", "the newest upload wins: {last:#}");
    assert_eq!(aws.code_sha256("victim").await, last["code_sha256"].as_str().unwrap());
    let versions = assert_versions_in_order(&aws, "victim", &order).await;
    eprintln!("sigkill x10: {versions} versions published, none twice, none out of order");
    eventually(T, "queue settled", || async {
        aws.queue_counts(&stack.queue_url).await == (0, 0)
    })
    .await;
    assert_eq!(aws.queue_counts(&stack.dlq_url).await, (0, 0));
    eventually(T, "no build container left", || async {
        build_containers_left(worker.child.id()) == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_racing_on_one_function_deploy_only_uploads() {
    let moto = Moto::start();
    let stack = moto.bootstrap("race", false);
    let aws = Aws::new(&stack.endpoint).await;
    let _workers: Vec<Worker> = (0..3).map(|_| Worker::spawn(&stack, &["--concurrency", "2"])).collect();

    let key = "apps/contended.zip";
    let mut ids = Vec::new();
    let mut order = HashMap::new();
    for v in 0..12 {
        let files = app(v);
        order.insert(expected_sha(&as_refs(&files)), v as usize);
        ids.push(aws.upload(&stack, key, zip_owned(&files)).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in &ids {
        aws.wait_report(&stack, key, id, T).await;
    }
    // Across processes the guard against a stale overwrite is Lambda's RevisionId (and
    // PublishVersion's CodeSha256), which the patched emulator enforces as Lambda does
    // (dev/moto_patches.py): the newest upload ends on top and versions are in upload order.
    let newest_report = aws.wait_report(&stack, key, &ids[11], T).await;
    assert_eq!(newest_report["outcome"], "deployed", "{newest_report:#}");
    let on_top = aws.code_sha256("contended").await;
    assert!(
        order.contains_key(&on_top),
        "the function runs a package nobody uploaded"
    );
    let out = aws
        .lambda
        .list_versions_by_function()
        .function_name("contended")
        .send()
        .await
        .unwrap();
    let positions: Vec<usize> = out
        .versions()
        .iter()
        .filter(|v| v.version() != Some("$LATEST"))
        .map(|v| {
            *order
                .get(v.code_sha256().unwrap())
                .expect("every version runs an uploaded package")
        })
        .collect();
    let reordered = positions.windows(2).filter(|w| w[1] <= w[0]).count();
    eprintln!(
        "race: 12 uploads, 3 workers, {} versions published; upload {} of 0..=11 on top",
        positions.len(),
        order[&on_top]
    );
    assert_eq!(order[&on_top], 11, "the newest upload ends on top");
    assert_eq!(reordered, 0, "versions in upload order, none twice: {positions:?}");
}

fn as_refs(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    files.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect()
}

/// Mounts a tmpfs of `size` at `dir`; unmounted on drop. Needs root, as in CI here.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs needs root (this test fills a disk on purpose)");
        Tmpfs(dir.to_owned())
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_fails_cleanly_and_recovers() {
    let moto = Moto::start();
    let stack = moto.bootstrap("diskfull", false);
    let aws = Aws::new(&stack.endpoint).await;
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let disk = Tmpfs::mount(&work, "1m");
    let worker = Worker::spawn(
        &stack,
        &["--work-dir", work.to_str().unwrap(), "--retry-base-secs", "1"],
    );

    // 4 MB of hex text: compresses about 2:1, so the zip fits and the unpacked tree does not.
    let mut rng = Rng(0x5eed);
    let text: Vec<u8> = (0..4 << 20)
        .map(|_| b"0123456789abcdef"[rng.below(16) as usize])
        .collect();
    let files: Vec<(&str, &[u8])> = vec![("app.py", b"def handler(e, c):\n    return 1\n"), ("data.txt", &text)];
    let id = aws.upload(&stack, "apps/heavy.zip", zip_of(&files)).await;
    let r = aws.wait_report_any(&stack, "apps/heavy.zip", &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["error_class"], "transient", "a full disk passes: {r:#}");
    assert!(r["error"].as_str().unwrap().contains("No space left"), "{r:#}");
    assert!(worker.child.id() > 0 && http_get(worker.metrics_port, "/healthz").await.contains("ok"));

    disk.resize("64m");
    let r = aws.wait_report(&stack, "apps/heavy.zip", &id, T).await;
    assert_eq!(r["outcome"], "deployed", "recovers once space returns: {r:#}");
    assert!(r["attempt"].as_u64().unwrap() >= 2);
    let leftovers = job_leftovers(&work);
    assert!(leftovers.is_empty(), "failed jobs left nothing behind: {leftovers:?}");
    drop(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_keeps_coming_back_ends_in_the_dlq() {
    // A build that never finishes within the job's deadline (a transient failure: the next
    // attempt might be on a faster instance): every attempt is cut off, the message is retried
    // with backoff, and after the queue's maxReceiveCount (5) the redrive policy moves it to
    // the dead-letter queue. The worker stays up throughout.
    let moto = Moto::start();
    let stack = moto.bootstrap("dlq", false);
    let aws = Aws::new(&stack.endpoint).await;
    let cache = tempfile::tempdir().unwrap();
    let worker = Worker::spawn(
        &stack,
        &[
            "--retry-base-secs",
            "0",
            "--job-timeout-secs",
            "2",
            "--build-network",
            "none",
            "--cache-dir",
            cache.path().to_str().unwrap(),
        ],
    );
    let files: Vec<(&str, &[u8])> = vec![
        ("app.py", b"import slowpkg\ndef handler(e, c):\n    return 1\n"),
        ("requirements.txt", b"./vendor/slowpkg\n"),
        (
            "vendor/slowpkg/setup.py",
            b"import time\ntime.sleep(120)\nfrom setuptools import setup\nsetup(name='slowpkg', version='1.0', py_modules=['slowpkg'])\n",
        ),
        ("vendor/slowpkg/slowpkg.py", b"VALUE = 1\n"),
    ];
    let id = aws.upload(&stack, "apps/never-done.zip", zip_of(&files)).await;

    let r = aws.wait_report_any(&stack, "apps/never-done.zip", &id, T).await;
    assert_eq!(r["error_class"], "transient", "{r:#}");
    assert_eq!(r["will_retry"], true);
    assert!(r["error"].as_str().unwrap().contains("ran out of time"), "{r:#}");
    eventually(T, "the message reaches the DLQ", || async {
        aws.queue_counts(&stack.dlq_url).await.0 == 1
    })
    .await;
    assert_eq!(aws.queue_counts(&stack.queue_url).await, (0, 0));
    let last = aws.wait_report_any(&stack, "apps/never-done.zip", &id, T).await;
    assert!(
        last["attempt"].as_u64().unwrap() >= 5,
        "retried up to maxReceiveCount: {last:#}"
    );
    assert!(
        http_get(worker.metrics_port, "/healthz").await.contains("ok"),
        "the worker is still up"
    );
}
