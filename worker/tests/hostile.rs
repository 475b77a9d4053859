//! Hostile input through the real binary against moto: every upload and message in this
//! corpus is generated here (no binary blobs checked in), and each must end in the right
//! outcome: a permanent-failure report that names the problem (or a deliberate success), no
//! crash, no hang, no partial deploy, and nothing written outside the job's work directory.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use support::*;

const T: Duration = Duration::from_secs(60);

/// A zip written byte by byte, so that it can say things no zip library would write:
/// duplicate names, names that are not UTF-8, paths that escape, symlinks, lying sizes.
/// Entries are stored (no compression) unless given pre-deflated data.
struct RawZip {
    out: Vec<u8>,
    central: Vec<u8>,
    count: u16,
}

impl RawZip {
    fn new() -> Self {
        RawZip {
            out: Vec::new(),
            central: Vec::new(),
            count: 0,
        }
    }

    /// Adds an entry. `unix_mode` goes in the external attributes (0o120777 for a symlink).
    fn entry(mut self, name: &[u8], data: &[u8], unix_mode: u32) -> Self {
        self.raw_entry(name, data, 0, data.len() as u32, unix_mode);
        self
    }

    /// Adds a deflated entry whose uncompressed size is `size` (as declared).
    fn deflated(mut self, name: &[u8], deflated: &[u8], size: u32, crc: u32) -> Self {
        let offset = self.out.len() as u32;
        self.header(name, 8, crc, deflated.len() as u32, size);
        self.out.extend_from_slice(deflated);
        self.central_entry(name, 8, crc, deflated.len() as u32, size, 0o100644, offset);
        self
    }

    fn raw_entry(&mut self, name: &[u8], data: &[u8], method: u16, size: u32, unix_mode: u32) {
        let crc = crc32fast::hash(data);
        let offset = self.out.len() as u32;
        self.header(name, method, crc, data.len() as u32, size);
        self.out.extend_from_slice(data);
        self.central_entry(name, method, crc, data.len() as u32, size, unix_mode, offset);
    }

    fn header(&mut self, name: &[u8], method: u16, crc: u32, csize: u32, size: u32) {
        let o = &mut self.out;
        o.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        o.extend_from_slice(&20u16.to_le_bytes()); // version needed
        o.extend_from_slice(&0u16.to_le_bytes()); // flags: no UTF-8 flag, on purpose
        o.extend_from_slice(&method.to_le_bytes());
        o.extend_from_slice(&[0, 0, 0x21, 0]); // time, date: 1980-01-01
        o.extend_from_slice(&crc.to_le_bytes());
        o.extend_from_slice(&csize.to_le_bytes());
        o.extend_from_slice(&size.to_le_bytes());
        o.extend_from_slice(&(name.len() as u16).to_le_bytes());
        o.extend_from_slice(&0u16.to_le_bytes());
        o.extend_from_slice(name);
    }

    #[allow(clippy::too_many_arguments)]
    fn central_entry(
        &mut self,
        name: &[u8],
        method: u16,
        crc: u32,
        csize: u32,
        size: u32,
        unix_mode: u32,
        offset: u32,
    ) {
        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&(3u16 << 8 | 20).to_le_bytes()); // made by: Unix
        c.extend_from_slice(&20u16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&method.to_le_bytes());
        c.extend_from_slice(&[0, 0, 0x21, 0]);
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&csize.to_le_bytes());
        c.extend_from_slice(&size.to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
        c.extend_from_slice(&(unix_mode << 16).to_le_bytes());
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(name);
        self.count += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        let cd_offset = self.out.len() as u32;
        let cd_size = self.central.len() as u32;
        self.out.extend_from_slice(&self.central);
        self.out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        self.out.extend_from_slice(&[0; 4]);
        self.out.extend_from_slice(&self.count.to_le_bytes());
        self.out.extend_from_slice(&self.count.to_le_bytes());
        self.out.extend_from_slice(&cd_size.to_le_bytes());
        self.out.extend_from_slice(&cd_offset.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes());
        self.out
    }
}

const APP: &[u8] = b"def handler(e, c):\n    return 1\n";

/// Deflates `data` with the zip crate, returning (deflated bytes, crc).
fn deflate(data: &[u8]) -> (Vec<u8>, u32) {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("x", zip::write::SimpleFileOptions::default().compression_level(Some(9)))
        .unwrap();
    w.write_all(data).unwrap();
    let bytes = w.finish().unwrap().into_inner();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
    let entry = archive.by_index_raw(0).unwrap();
    let start = entry.data_start().unwrap() as usize;
    let len = entry.compressed_size() as usize;
    (bytes[start..start + len].to_vec(), entry.crc32())
}

/// (name, zip bytes, what the report's error must mention; None: must deploy)
fn corpus(escape_target: &str) -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
    let good = zip_of(&[("app.py", APP)]);
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let (bomb, bomb_crc) = deflate(&vec![0u8; 200 << 20]);
    let many: Vec<(String, Vec<u8>)> = (0..100_000).map(|i| (format!("f/{i}"), Vec::new())).collect();
    let nested = zip_of(&[("app.py", APP), ("inner.zip", &zip_of(&[("../../evil.py", b"x")]))]);
    vec![
        ("not-a-zip", b"this is plainly text".to_vec(), Some("not a valid zip")),
        ("zero-bytes", Vec::new(), Some("not a valid zip")),
        ("truncated", truncated, Some("not a valid zip")),
        ("empty", zip_of(&[]), Some("has no files")),
        (
            "dotdot",
            RawZip::new()
                .entry(b"app.py", APP, 0o100644)
                .entry(format!("../../{escape_target}").as_bytes(), b"x", 0o100644)
                .finish(),
            Some("contains `..`"),
        ),
        (
            "absolute",
            RawZip::new()
                .entry(b"app.py", APP, 0o100644)
                .entry(format!("/{escape_target}").as_bytes(), b"x", 0o100644)
                .finish(),
            Some("is absolute"),
        ),
        (
            "symlink-out",
            RawZip::new()
                .entry(b"app.py", APP, 0o100644)
                .entry(b"link", b"../../../../etc/passwd", 0o120777)
                .finish(),
            Some("points outside"),
        ),
        (
            "duplicate",
            RawZip::new()
                .entry(b"app.py", APP, 0o100644)
                .entry(b"app.py", b"import os\n", 0o100644)
                .finish(),
            Some("names repeat"),
        ),
        (
            "not-utf8-name",
            RawZip::new()
                .entry(b"app.py", APP, 0o100644)
                .entry(b"caf\xe9\xff.py", b"x", 0o100644)
                .finish(),
            Some("not UTF-8"),
        ),
        (
            "deflate-bomb",
            RawZip::new()
                .entry(b"app.py", APP, 0o100644)
                .deflated(b"zeros.bin", &bomb, 200 << 20, bomb_crc)
                .finish(),
            Some("zip bomb"),
        ),
        (
            "lying-size",
            RawZip::new()
                .entry(b"app.py", APP, 0o100644)
                .deflated(b"small.bin", &bomb, 10, bomb_crc)
                .finish(),
            Some("larger than its declared"),
        ),
        ("hundred-thousand", zip_owned(&many), Some("100000 entries")),
        ("nested-zip", nested, None),
        (
            "manifest-type",
            zip_of(&[("app.py", APP), ("lambda.toml", b"memory = \"lots\"\n")]),
            Some("memory"),
        ),
        (
            "manifest-unknown",
            zip_of(&[("app.py", APP), ("lambda.toml", b"memroy = 512\n")]),
            Some("memroy"),
        ),
        (
            "manifest-name",
            zip_of(&[("app.py", APP), ("lambda.toml", b"name = \"no/slashes\"\n")]),
            Some("invalid function name"),
        ),
        (
            "manifest-memory",
            zip_of(&[("app.py", APP), ("lambda.toml", b"memory = 64\n")]),
            Some("128..=10240"),
        ),
        (
            "manifest-timeout",
            zip_of(&[("app.py", APP), ("lambda.toml", b"timeout = 901\n")]),
            Some("1..=900"),
        ),
        (
            "no-runtime",
            zip_of(&[("README.md", b"hi")]),
            Some("cannot detect the runtime"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_fail_cleanly_and_nothing_escapes() {
    let moto = Moto::start();
    let stack = moto.bootstrap("hostile", false);
    let aws = Aws::new(&stack.endpoint).await;
    let sandbox = tempfile::tempdir().unwrap();
    let work = sandbox.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let escape_target = format!(
        "{}/escaped.txt",
        sandbox.path().display().to_string().trim_start_matches('/')
    );
    let worker = Worker::spawn(
        &stack,
        &[
            "--work-dir",
            work.to_str().unwrap(),
            "--max-entries",
            "50000",
            "--max-ratio",
            "100",
            "--concurrency",
            "2",
        ],
    );

    let cases = corpus(&escape_target);
    let mut ids = Vec::new();
    for (name, bytes, _) in &cases {
        ids.push(aws.upload(&stack, &format!("apps/{name}.zip"), bytes.clone()).await);
    }
    let mut passed = 0;
    for ((name, _, expect), id) in cases.iter().zip(&ids) {
        let key = format!("apps/{name}.zip");
        let r = aws.wait_report(&stack, &key, id, T).await;
        match expect {
            Some(words) => {
                assert_eq!(r["outcome"], "failed", "{name}: {r:#}");
                assert_eq!(r["error_class"], "permanent", "{name}: {r:#}");
                let error = r["error"].as_str().unwrap();
                assert!(
                    error.contains(words),
                    "{name}: the error must name the problem ({words}): {error}"
                );
                assert!(
                    aws.lambda.get_function().function_name(*name).send().await.is_err(),
                    "{name}: nothing deployed"
                );
            }
            None => assert_eq!(r["outcome"], "deployed", "{name}: {r:#}"),
        }
        passed += 1;
    }
    assert_eq!(passed, cases.len());
    assert!(
        !sandbox.path().join("escaped.txt").exists(),
        "nothing written outside the work dir"
    );
    eventually(T, "queue settled", || async {
        aws.queue_counts(&stack.queue_url).await == (0, 0)
    })
    .await;
    assert_eq!(
        aws.queue_counts(&stack.dlq_url).await,
        (0, 0),
        "permanent failures never reach the DLQ"
    );
    let leftovers = job_leftovers(&work);
    assert!(leftovers.is_empty(), "job directories are removed: {leftovers:?}");
    assert!(
        worker.child.id() > 0 && http_get(worker.metrics_port, "/healthz").await.contains("ok"),
        "the worker is alive"
    );
    eprintln!("hostile uploads tried and passed: {passed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_and_keys() {
    let moto = Moto::start();
    let stack = moto.bootstrap("keys", false);
    let aws = Aws::new(&stack.endpoint).await;
    let worker = Worker::spawn(&stack, &["--allowed-buckets", &stack.bucket]);

    // A key with spaces, +, % and non-ASCII: decoded exactly; the manifest names the function.
    let weird = "apps/my app+v1 100% été.zip";
    let files: &[(&str, &[u8])] = &[("app.py", APP), ("lambda.toml", b"name = \"weird-key\"\n")];
    let id = aws.upload(&stack, weird, zip_of(files)).await;
    let r = aws.wait_report(&stack, weird, &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert_eq!(r["source"]["key"], weird);
    // Without a manifest the stem is not a valid function name: a clear permanent failure.
    let id = aws
        .upload(&stack, "apps/no name ok.zip", zip_of(&[("app.py", APP)]))
        .await;
    let r = aws.wait_report(&stack, "apps/no name ok.zip", &id, T).await;
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("invalid function name `no name ok`"),
        "{r:#}"
    );

    // Not JSON; JSON but no event; an event for another bucket; a deleted object.
    let send = |body: String| {
        let sqs = aws.sqs.clone();
        let url = stack.queue_url.clone();
        async move {
            sqs.send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await
                .unwrap()
        }
    };
    send("{{{ not json".into()).await;
    send(r#"{"hello": "world"}"#.into()).await;
    let event = |bucket: &str, key: &str, etag: &str| {
        serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": "2026-11-23T07:00:00.000Z",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1, "eTag": etag}}}]})
        .to_string()
    };
    send(event("someone-elses-bucket", "apps/x.zip", "abc")).await;
    // An object deleted before the worker got to it (never there, as far as S3 is concerned).
    let gone = "0123456789abcdef0123456789abcdef";
    send(event(&stack.bucket, "apps/gone.zip", gone)).await;
    // Shift steps that are not ours to follow: the marker around something else; a step for a
    // report outside the status prefix; a step index outside its schedule. None moves anything.
    send(r#"{"auto-lambda-shift-step": {"function": "x"}}"#.into()).await;
    let step = |report_key: &str, step: u32| {
        serde_json::json!({"auto-lambda-shift-step": {"function": "weird-key", "alias": "live",
            "from_version": "1", "to_version": "1", "strategy": "canary", "schedule": [10, 100],
            "step": step, "interval_secs": 1, "due_at_ms": 0, "alarms": [], "ignored_alarms": [],
            "started_at": "2026-11-30T00:00:00.000Z", "order": "x", "report_bucket": stack.bucket, "report_key": report_key}})
        .to_string()
    };
    send(step("apps/weird.json", 1)).await;
    send(step("status/apps/weird.json", 0)).await;

    let r = aws.wait_report(&stack, "apps/gone.zip", gone, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["error_class"], "permanent", "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("NoSuchKey"), "{r:#}");
    eventually(T, "queue settled", || async {
        aws.queue_counts(&stack.queue_url).await == (0, 0)
    })
    .await;
    eventually(T, "non-events counted", || async {
        worker.metric("auto_lambda_jobs_total{outcome=\"not-an-event\"}").await == 5.0
    })
    .await;
    assert!(
        worker.log().contains("someone-elses-bucket"),
        "the foreign event is logged"
    );
    assert_eq!(aws.queue_counts(&stack.dlq_url).await, (0, 0));
}
