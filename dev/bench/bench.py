#!/usr/bin/env python3
"""make bench: every benchmark of issue 7, each against a baseline measured in the same run.

    .venv/bin/python dev/bench/bench.py [--only packaging,latency,native,verify,installers,burst,footprint,sim]

Needs the release binaries (target/release/auto-lambda-worker, queue-metric-publisher and the
package-tree bench tool), Info-ZIP `zip`, GNU `/usr/bin/time`, Docker with the local build image
(dev/build-image.sh) and the venv with moto (dev/setup.sh). dev/bench.sh sees to all of that.

Prints one line per figure, `name: value unit`, then a markdown table, then the scaling
simulator's output. Progress goes to stderr; logs and scratch files to .dev/bench/.
Every server it starts listens on loopback and is stopped on exit, by PID.
"""
import argparse
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import gentree  # noqa: E402

BENCH = os.path.join(ROOT, ".dev", "bench")
RELEASE = os.path.join(ROOT, "target", "release")
WORKER = os.path.join(RELEASE, "auto-lambda-worker")
PUBLISHER = os.path.join(RELEASE, "queue-metric-publisher")
PACKAGE_TREE = os.path.join(RELEASE, "package-tree")
PY = sys.executable
REGION = "us-east-1"
BUILD_IMAGE = os.environ.get("AUTO_LAMBDA_BUILD_IMAGE", "auto-lambda/build-python3.13:test")
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1_000_000

FIGURES = []
ROWS = []
PROCS = []   # every child process started here (workers, publishers, profilers)
STACKS = []  # moto state directories started here


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def figure(name, value, unit):
    if isinstance(value, float):
        value = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    print(f"{name}: {value} {unit}", flush=True)
    FIGURES.append((name, value, unit))


def row(fig, value, baseline, ratio, target, met):
    ROWS.append((fig, value, baseline, ratio, target, met))


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return s[int(k)]


def yes(ok):
    return "yes" if ok else "**no**"


# ---- processes ---------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_proc(p, timeout=20):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in PROCS:
        PROCS.remove(p)


def cleanup():
    for p in list(PROCS):
        stop_proc(p)
    for state in list(STACKS):
        subprocess.run([PY, os.path.join(ROOT, "dev/localaws.py"), "stop", "--state", state],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        STACKS.remove(state)


class Stack:
    """A fresh moto and the pipeline's resources (dev/localaws.py, the same as the demo)."""

    def __init__(self, name, asg=0):
        self.state = os.path.join(BENCH, f"moto-{name}")
        shutil.rmtree(self.state, ignore_errors=True)
        STACKS.append(self.state)
        self.endpoint = subprocess.run(
            [PY, os.path.join(ROOT, "dev/localaws.py"), "start", "--state", self.state],
            check=True, capture_output=True, text=True).stdout.strip()
        cmd = [PY, os.path.join(ROOT, "dev/localaws.py"), "bootstrap", "--endpoint", self.endpoint, "--name", name]
        if asg:
            cmd += ["--asg", str(asg)]
        env = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        self.bucket, self.queue_url, self.role_arn = env["bucket"], env["queue_url"], env["role_arn"]
        self.asg_name = env.get("asg_name")
        import boto3
        from botocore.config import Config
        kw = dict(endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="testing",
                  aws_secret_access_key="testing", config=Config(retries={"max_attempts": 3}))
        self.s3 = boto3.client("s3", **kw)
        self.sqs = boto3.client("sqs", **kw)
        self.lam = boto3.client("lambda", **kw)

    def close(self):
        subprocess.run([PY, os.path.join(ROOT, "dev/localaws.py"), "stop", "--state", self.state],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.state in STACKS:
            STACKS.remove(self.state)

    def moto_pid(self):
        return int(open(os.path.join(self.state, "moto.pid")).read())

    def env(self):
        e = {k: v for k, v in os.environ.items() if not k.startswith(("AUTO_LAMBDA_", "QMP_", "AWS_"))}
        e.pop("RUST_LOG", None)
        e.update(CREDS, AWS_ENDPOINT_URL=self.endpoint)
        return e

    def worker(self, tag, *extra, wait_secs=1, cache_dir=None):
        port = free_port()
        work = os.path.join(BENCH, "work")
        os.makedirs(work, exist_ok=True)
        env = self.env()
        env.update(AUTO_LAMBDA_QUEUE_URL=self.queue_url, AUTO_LAMBDA_ROLE_ARN=self.role_arn,
                   AUTO_LAMBDA_SCALE_IN_PROTECTION="off", AUTO_LAMBDA_CLOUDWATCH_METRICS="false",
                   # The local image is Python 3.13; apps that name no runtime get that one.
                   AUTO_LAMBDA_DEFAULT_PYTHON_RUNTIME="python3.13",
                   AUTO_LAMBDA_UV_BINARY=os.path.join(ROOT, ".venv", "bin", "uv"))
        cmd = [WORKER, "--wait-time-secs", str(wait_secs), "--metrics-addr", f"127.0.0.1:{port}",
               "--work-dir", work, "--build-image", f"python3.13={BUILD_IMAGE}", "--build-network", "none",
               "--cache-dir", cache_dir or os.path.join(BENCH, "cache"), *extra]
        logf = open(os.path.join(BENCH, f"{tag}.log"), "wb")
        p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        PROCS.append(p)
        wait_http(port, p, tag)
        p.port = port
        return p

    def publisher(self, tag, period):
        port = free_port()
        cmd = [PUBLISHER, "--queue-url", self.queue_url, "--period-secs", str(period),
               "--metrics-addr", f"127.0.0.1:{port}"]
        if self.asg_name:
            cmd += ["--asg-name", self.asg_name]
        logf = open(os.path.join(BENCH, f"{tag}.log"), "wb")
        p = subprocess.Popen(cmd, env=self.env(), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        PROCS.append(p)
        wait_http(port, p, tag)
        return p

    def upload(self, key, body):
        """PUT (never multipart: moto sends two events for those); returns the report id."""
        put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return put.get("VersionId") or put["ETag"].strip('"')

    def report(self, key, rid):
        try:
            r = json.load(self.s3.get_object(Bucket=self.bucket, Key=f"status/{key}/{rid}.json")["Body"])
        except self.s3.exceptions.NoSuchKey:
            return None
        return None if r.get("will_retry") else r

    def wait_report(self, key, rid, timeout, poll=0.01):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.report(key, rid)
            if r is not None:
                return r
            time.sleep(poll)
        raise SystemExit(f"bench: error: no final report for {key} ({rid}) within {timeout:.0f}s; see .dev/bench/*.log")

    def queue_counts(self):
        a = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def wait_http(port, proc, tag, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: error: {tag} exited with {proc.returncode}; see .dev/bench/{tag}.log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: error: {tag} did not serve /healthz within {timeout}s")


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def zip_dir(path, extra=None):
    """The upload a user's zip tool would make (as dev/upload.py does)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for f in sorted(filenames):
                full = os.path.join(dirpath, f)
                rel = os.path.relpath(full, path)
                if extra and rel in extra:
                    continue
                z.write(full, rel)
        for rel, data in (extra or {}).items():
            z.writestr(rel, data)
    return buf.getvalue()


def zip_files(files, method=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in files:
            z.writestr(name, data)
    return buf.getvalue()


# ---- 1. packaging throughput -------------------------------------------------------------------

TREES = [("small", 3), ("medium", 2), ("large", 1)]  # profile, runs (best of)


def ensure_tree(profile):
    root = os.path.join(BENCH, "trees", profile)
    stamp = root + ".stamp"
    want = f"{profile} {hash_file(gentree.__file__)}"
    if os.path.isdir(root) and os.path.exists(stamp) and open(stamp).read() == want:
        return root
    shutil.rmtree(root, ignore_errors=True)
    t = time.monotonic()
    n, size = gentree.generate(profile, root)
    with open(stamp, "w") as f:
        f.write(want)
    log(f"generated the {profile} tree: {n} files, {size / MB:.0f} MB in {time.monotonic() - t:.1f} s")
    return root


def hash_file(path):
    import hashlib
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def tree_size(root):
    n = total = 0
    for dirpath, _, filenames in os.walk(root):
        for f in filenames:
            full = os.path.join(dirpath, f)
            total += os.path.getsize(full)
            n += 1
            with open(full, "rb") as fh:  # warm the page cache: every tool reads from memory
                while fh.read(1 << 20):
                    pass
    return n, total


def timed(cmd, cwd=None):
    """Runs cmd under GNU time; returns (wall seconds, peak RSS bytes)."""
    tf = os.path.join(BENCH, "time.txt")
    t = time.monotonic()
    subprocess.run(["/usr/bin/time", "-v", "-o", tf, *cmd], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.monotonic() - t
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(tf).read()).group(1)) * 1024
    return wall, rss


def zip_content(path):
    with zipfile.ZipFile(path) as z:
        infos = [i for i in z.infolist() if not i.is_dir()]
        return len(infos), sum(i.file_size for i in infos)


def bench_packaging():
    out_dir = os.path.join(BENCH, "out")
    os.makedirs(out_dir, exist_ok=True)
    tools = {
        "ours": lambda root, out: ([PACKAGE_TREE, root, out], None),
        "python": lambda root, out: ([PY, os.path.join(HERE, "pyzip.py"), root, out], None),
        "infozip": lambda root, out: (["zip", "-r", "-X", "-6", "-q", out, "."], root),
    }
    for profile, runs in TREES:
        root = ensure_tree(profile)
        n, size = tree_size(root)
        best = {k: (float("inf"), 0) for k in tools}
        zsize = {}
        for r in range(runs):
            order = list(tools)[r % 3:] + list(tools)[:r % 3]
            for name in order:
                out = os.path.join(out_dir, f"{profile}-{name}.zip")
                if os.path.exists(out):
                    os.remove(out)  # zip -r would append to it
                cmd, cwd = tools[name](root, out)
                wall, rss = timed(cmd, cwd)
                best[name] = (min(best[name][0], wall), max(best[name][1], rss))
                zsize[name] = os.path.getsize(out)
        for name in tools:  # every tool packed the same files
            entries, unzipped = zip_content(os.path.join(out_dir, f"{profile}-{name}.zip"))
            if (entries, unzipped) != (n, size):
                raise SystemExit(f"bench: error: {name} packed {entries} files / {unzipped} bytes of {n} / {size}")
        mbps = {k: size / MB / v[0] for k, v in best.items()}
        label = f"{size / MB:.0f} MB"
        figure(f"pack_{profile}_input", f"{size / MB:.1f}", f"MB ({n} files)")
        for k in tools:
            figure(f"pack_{profile}_{k}_throughput", mbps[k], f"MB/s (best of {runs}, {best[k][0]:.2f} s)")
        for k in tools:
            figure(f"pack_{profile}_{k}_peak_rss", best[k][1] / MB, "MB")
        for k in tools:
            figure(f"pack_{profile}_{k}_zip_size", zsize[k] / MB, "MB")
        r_py, r_zip = mbps["ours"] / mbps["python"], mbps["ours"] / mbps["infozip"]
        figure(f"pack_{profile}_ratio_vs_python", r_py, "x")
        figure(f"pack_{profile}_ratio_vs_infozip", r_zip, "x")
        row(f"packaging {label} tree (MB/s)", f"{mbps['ours']:.1f}",
            f"zipfile {mbps['python']:.1f} / zip {mbps['infozip']:.1f}",
            f"{r_py:.2f}x / {r_zip:.2f}x", ">= 2x zipfile", yes(r_py >= 2))
        if profile == "large":
            row(f"packaging peak RSS, {label} (MB)", f"{best['ours'][1] / MB:.0f}",
                f"zipfile {best['python'][1] / MB:.0f} / zip {best['infozip'][1] / MB:.0f}",
                f"{best['ours'][1] / best['python'][1]:.2f}x", "-", "-")
    profile_packager(ensure_tree("medium"), out_dir)


def profile_packager(root, out_dir):
    """Where the packager's time goes, from perf samples (skipped when perf is unavailable)."""
    if not shutil.which("perf"):
        log("perf not found: skipping the packager profile")
        return
    data = os.path.join(BENCH, "perf.data")
    out = os.path.join(out_dir, "perf.zip")
    rec = subprocess.run(["perf", "record", "-q", "-F", "999", "-o", data, "--", PACKAGE_TREE, root, out],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if rec.returncode != 0:
        log(f"perf record failed ({rec.stderr.strip()[:200]}): skipping the packager profile")
        return
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym"],
                         capture_output=True, text=True).stdout
    groups = {"deflate": 0.0, "crc32": 0.0, "sha256": 0.0, "kernel (read/write/fsync)": 0.0, "other": 0.0}
    for line in rep.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
        if not m:
            continue
        share, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).lower()
        if kind == "k" or "kernel" in dso:
            groups["kernel (read/write/fsync)"] += share
        elif "crc" in sym:
            groups["crc32"] += share
        elif "sha2" in sym or "sha256" in sym or "compress256" in sym:
            groups["sha256"] += share
        elif any(s in sym for s in ("deflate", "zlib_rs", "longest_match", "compress", "fill_window",
                                     "hash_calc", "insert_string", "tr_", "send_bits", "flush_pending")):
            groups["deflate"] += share
        else:
            groups["other"] += share
    for k, v in groups.items():
        figure(f"pack_medium_profile_{k.split()[0]}", v, "% of samples")


# ---- 2. upload-to-deploy latency ---------------------------------------------------------------

LATENCY_UPLOADS = 60


def latency_app():
    """A pure-code app of ~1 MB unzipped: a handler and 40 modules of generated Python."""
    rnd = random.Random(7)
    pool = gentree.text_pool(rnd, 1_100_000)
    files = [(f"lib/mod_{i:02d}.py", pool[i * 25_000:(i + 1) * 25_000]) for i in range(40)]
    return files


def bench_latency(stack, worker):
    files = latency_app()
    key = "apps/bench-latency.zip"
    e2e, stages = [], []
    for i in range(LATENCY_UPLOADS):
        app = f"VERSION = {i}\n\ndef handler(event, context):\n    return {{'version': VERSION}}\n".encode()
        body = zip_files(files + [("app.py", app)])
        t = time.monotonic()
        rid = stack.upload(key, body)
        r = stack.wait_report(key, rid, 60)
        e2e.append((time.monotonic() - t) * 1000)
        if r["outcome"] != "deployed":
            raise SystemExit(f"bench: error: latency upload {i}: {r['outcome']}: {r.get('error')}")
        stages.append(r["timings_ms"])
    unzipped = sum(len(b) for _, b in files) + len(app)
    get = lambda s, k: s.get(k, 0)  # noqa: E731
    overhead = [get(s, "unpack") + get(s, "build") + get(s, "package") for s in stages]
    other = [e - sum(s.values()) for e, s in zip(e2e, stages)]
    figure("latency_app_size", f"{unzipped / MB:.2f}", f"MB unzipped, {len(body) / MB:.2f} MB zip")
    figure("latency_uploads", len(e2e), "sequential uploads (one function, a new version each)")
    figure("latency_e2e_p50", pct(e2e, 50), "ms")
    figure("latency_e2e_p99", pct(e2e, 99), "ms")
    figure("latency_worker_overhead_p50", pct(overhead, 50), "ms (unpack+build+package)")
    figure("latency_worker_overhead_p99", pct(overhead, 99), "ms")
    for k in ("download", "unpack", "build", "package", "deploy"):
        figure(f"latency_stage_{k}_p50", pct([get(s, k) for s in stages], 50), "ms")
    figure("latency_queue_and_report_p50", pct(other, 50), "ms (notification, receive, report write, poll)")

    # Baseline: the same Lambda calls made directly with boto3 (update code, wait, publish).
    pkg = zip_files(files + [("app.py", app)])
    name = "bench-direct"
    stack.lam.create_function(FunctionName=name, Runtime="python3.13", Role=stack.role_arn,
                              Handler="app.handler", Code={"ZipFile": pkg})
    direct = []
    for i in range(20):
        pkg = zip_files(files + [("app.py", app + f"# {i}\n".encode())])
        t = time.monotonic()
        stack.lam.update_function_code(FunctionName=name, ZipFile=pkg)
        stack.lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
        stack.lam.publish_version(FunctionName=name)
        direct.append((time.monotonic() - t) * 1000)
    figure("latency_direct_boto3_deploy_p50", pct(direct, 50), "ms (baseline: update code + wait + publish)")
    p50, p99, ov = pct(e2e, 50), pct(e2e, 99), pct(overhead, 50)
    d50 = pct(direct, 50)
    row("upload -> deployed p50 (ms)", f"{p50:.0f}", f"direct boto3 deploy {d50:.0f}", f"{p50 / d50:.1f}x", "-", "-")
    row("upload -> deployed p99 (ms)", f"{p99:.0f}", "-", "-", "-", "-")
    row("worker overhead p50 (ms, unpack+build+package)", f"{ov:.0f}", "-", "-", "< 50", yes(ov < 50))


# ---- 3. warm redeploy vs cold build ------------------------------------------------------------

def bench_native(stack):
    src = os.path.join(ROOT, "examples", "python-native")
    key = "apps/bench-native.zip"
    results = {}
    for label, extra in (("cold", None), ("warm", {"app.py": open(os.path.join(src, "app.py")).read()
                                                   + "\n# code-only change\n"})):
        body = zip_dir(src, extra)
        t = time.monotonic()
        rid = stack.upload(key, body)
        r = stack.wait_report(key, rid, 600, poll=0.02)
        total = (time.monotonic() - t) * 1000
        if r["outcome"] != "deployed":
            raise SystemExit(f"bench: error: native {label}: {r['outcome']}: {r.get('error')}")
        results[label] = (total, r["timings_ms"], r.get("dependencies"))
    (ct, cs, cd), (wt, ws, wd) = results["cold"], results["warm"]
    figure("native_cold_total", ct, f"ms (dependencies: {cd})")
    figure("native_cold_build", cs.get("build", 0), "ms")
    figure("native_warm_total", wt, f"ms (dependencies: {wd})")
    figure("native_warm_build", ws.get("build", 0), "ms")
    figure("native_warm_package", ws.get("package", 0), "ms")
    figure("native_cold_over_warm_total", ct / wt, "x")
    figure("native_cold_over_warm_build", cs.get("build", 0) / max(ws.get("build", 0), 1), "x")
    row("warm redeploy, python-native (ms)", f"{wt:.0f}", f"cold {ct:.0f}", f"{ct / wt:.1f}x faster", "-",
        yes(wd == "cache-local"))
    row("  build stage (ms)", f"{ws.get('build', 0)}", f"cold {cs.get('build', 0)}",
        f"{cs.get('build', 0) / max(ws.get('build', 0), 1):.0f}x", "-", "-")


# ---- 3b. verification on the warm path --------------------------------------------------------

VERIFY_REDEPLOYS = 30


def warm_redeploys(stack, key, src, n):
    """n code-only redeploys of `src` (its dependencies cached); returns (totals_ms, verify_ms)."""
    totals, verify = [], []
    base = open(os.path.join(src, "app.py")).read()
    for i in range(n):
        body = zip_dir(src, {"app.py": base + f"\n# change {i} {time.time_ns()}\n"})
        t = time.monotonic()
        rid = stack.upload(key, body)
        r = stack.wait_report(key, rid, 120, poll=0.005)
        totals.append((time.monotonic() - t) * 1000)
        if r["outcome"] != "deployed" or r.get("dependencies") != "cache-local":
            raise SystemExit(f"bench: error: warm redeploy {i}: {r['outcome']} ({r.get('dependencies')}): {r.get('error')}")
        verify.append(r["timings_ms"].get("verify", 0))
    return totals, verify


def bench_verify():
    """The warm redeploy of examples/python-native with verification on and off, the verifier's
    own p50/p99, and a verifier's cold start (from the worker's log)."""
    src = os.path.join(ROOT, "examples", "python-native")
    results = {}
    for label, extra in (("on", []), ("off", ["--verify", "false"])):
        stack = Stack(f"verify-{label}")
        try:
            cache = os.path.join(BENCH, f"cache-verify-{label}")
            shutil.rmtree(cache, ignore_errors=True)
            worker = stack.worker(f"verify-{label}-worker", *extra, cache_dir=cache)
            key = "apps/bench-verify.zip"
            r = stack.wait_report(key, stack.upload(key, zip_dir(src)), 600, poll=0.02)
            if r["outcome"] != "deployed":
                raise SystemExit(f"bench: error: verify {label}: cold deploy {r['outcome']}: {r.get('error')}")
            results[label] = warm_redeploys(stack, key, src, VERIFY_REDEPLOYS)
            stop_proc(worker)
        finally:
            stack.close()
    (on_total, on_verify), (off_total, _) = results["on"], results["off"]
    cold = None
    with open(os.path.join(BENCH, "verify-on-worker.log"), errors="replace") as fh:
        for line in fh:
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # the log's colours
            if "Verifier container started" in line and "elapsed_ms=" in line:
                cold = int(line.split("elapsed_ms=")[1].split()[0])
    p50_on, p50_off = pct(on_total, 50), pct(off_total, 50)
    v50, v99 = pct(on_verify, 50), pct(on_verify, 99)
    figure("verify_warm_redeploy_on_p50", p50_on, f"ms ({VERIFY_REDEPLOYS} code-only redeploys of python-native)")
    figure("verify_warm_redeploy_off_p50", p50_off, "ms (--verify false)")
    figure("verify_stage_p50", v50, "ms")
    figure("verify_stage_p99", v99, "ms")
    figure("verify_cold_start", cold if cold is not None else -1, "ms (start + interpreter probe of a verifier container)")
    row("warm redeploy p50, verification on (ms)", f"{p50_on:.0f}", f"off {p50_off:.0f}",
        f"+{p50_on - p50_off:.0f} ms", "< 200", yes(p50_on < 200))
    row("  verify stage p50 / p99 (ms)", f"{v50:.0f} / {v99:.0f}", "-", "-", "p50 < 150", yes(v50 < 150))
    row("  verifier cold start (ms)", f"{cold}", "-", "-", "- (once per image per worker)", "-")


# ---- 3c. cold dependency install: uv vs pip ----------------------------------------------------

INSTALL_SET = ["numpy", "pandas", "requests"]
INSTALL_RUNS = 3


def bench_installers():
    """A cold install of numpy+pandas+requests into --target, by uv and by pip, in the same
    container of the local python3.13 image, all from the same local wheelhouse (no network:
    the container runs with --network none). uv twice: with an empty cache, and with its cache
    warmed by one untimed install first, as the worker runs it (wheels first, from the uv cache
    it keeps between jobs, hard-linked)."""
    wheelhouse = os.path.join(BENCH, "wheelhouse")
    os.makedirs(wheelhouse, exist_ok=True)
    if not any(f.endswith(".whl") for f in os.listdir(wheelhouse)):
        log("downloading the wheelhouse (manylinux_2_34 x86_64, CPython 3.13) once")
        # pip does not widen one --platform to the older manylinux tags it implies: give each.
        platforms = [a for m in range(34, 16, -1) for a in ("--platform", f"manylinux_2_{m}_x86_64")]
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                        *platforms, "--platform", "manylinux2014_x86_64", "--python-version", "3.13",
                        "--implementation", "cp", "-d", wheelhouse, *INSTALL_SET], check=True)
    uv = os.path.join(ROOT, ".venv", "bin", "uv")
    pip_args = "--quiet --no-input --no-index --find-links /wheels " + " ".join(INSTALL_SET)
    uv_args = ("--quiet --no-config --no-index --find-links /wheels --python python3 "
               "--python-platform x86_64-manylinux_2_34 --python-version 3.13 " + " ".join(INSTALL_SET))
    # tool -> (untimed set-up, timed install)
    scripts = {
        "pip": ("true", f"python3 -m pip install --no-compile --target /tmp/out {pip_args}"),
        # pip's own defaults (it compiles every module to bytecode), for context.
        "pip-defaults": ("true", f"python3 -m pip install --target /tmp/out {pip_args}"),
        "uv": ("true", f"/opt/uv pip install --link-mode copy --target /tmp/out {uv_args}"),
        "uv-warm": (f"/opt/uv pip install --link-mode hardlink --target /tmp/warm {uv_args} && rm -rf /tmp/warm",
                    f"/opt/uv pip install --link-mode hardlink --target /tmp/out {uv_args}"),
    }
    times = {tool: [] for tool in scripts}
    for _ in range(INSTALL_RUNS):
        for tool, (setup, script) in scripts.items():
            timed_script = (setup + " && s=$(date +%s%N) && " + script + " && e=$(date +%s%N) && "
                            "echo $(( (e - s) / 1000000 ))")
            out = subprocess.run(
                ["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp:exec,size=3g",
                 "-e", "HOME=/tmp", "-e", "UV_CACHE_DIR=/tmp/uv-cache",
                 "-v", f"{wheelhouse}:/wheels:ro", "-v", f"{uv}:/opt/uv:ro",
                 BUILD_IMAGE, "sh", "-c", timed_script],
                check=True, capture_output=True, text=True)
            times[tool].append(int(out.stdout.strip().splitlines()[-1]))
    pip_ms, uv_ms, warm_ms = pct(times["pip"], 50), pct(times["uv"], 50), pct(times["uv-warm"], 50)
    default_ms = pct(times["pip-defaults"], 50)
    figure("install_cold_pip", pip_ms, f"ms (median of {INSTALL_RUNS}; {'+'.join(INSTALL_SET)}; --no-compile, as the worker runs it)")
    figure("install_cold_pip_defaults", default_ms, "ms (pip's defaults: bytecode compiled)")
    figure("install_cold_uv", uv_ms, f"ms (median of {INSTALL_RUNS}; empty uv cache)")
    figure("install_uv_warm_cache", warm_ms, f"ms (median of {INSTALL_RUNS}; uv cache warmed by one install first)")
    figure("install_uv_speedup", pip_ms / max(warm_ms, 1), "x (warm uv cache, as the worker runs it)")
    row("cold build numpy+pandas+requests, uv as the worker runs it (ms)", f"{warm_ms}", f"pip {pip_ms}",
        f"{pip_ms / max(warm_ms, 1):.1f}x faster", ">= 5x", yes(pip_ms >= 5 * warm_ms))
    row("  uv with an empty cache (ms)", f"{uv_ms}", f"pip {pip_ms}",
        f"{pip_ms / max(uv_ms, 1):.1f}x faster", "- (informative)", "-")
    row("  vs pip with its defaults (ms, compiles .pyc)", f"{warm_ms}", f"pip {default_ms}",
        f"{default_ms / max(warm_ms, 1):.1f}x faster", "- (informative)", "-")


# ---- 4. burst ----------------------------------------------------------------------------------

FUNCTIONS, VERSIONS = 20, 10


def bench_burst(workers, live=False):
    """Prefilled (default): all uploads are in the queue before the workers start. Live: the
    workers are already long-polling while the uploads arrive."""
    tag = f"burst{'_live' if live else ''}_{workers}w"
    stack = Stack(tag.replace("_", "-"))
    try:
        procs = [stack.worker(f"{tag}-worker{i}") for i in range(workers)] if live else []
        last = {}
        t = time.monotonic()
        moto_ticks0 = cpu_ticks(stack.moto_pid())
        for v in range(1, VERSIONS + 1):
            for f in range(FUNCTIONS):
                app = f"VERSION = {v}\nFUNCTION = {f}\n\ndef handler(event, context):\n    return VERSION\n"
                key = f"apps/burst-{f:02d}.zip"
                last[key] = stack.upload(key, zip_files([("app.py", app.encode())]))
        upload_s = time.monotonic() - t
        if live:
            t0 = t
        else:
            visible, _ = stack.queue_counts()
            log(f"burst: {FUNCTIONS * VERSIONS} uploads in {upload_s:.1f} s, {visible} messages waiting; "
                f"starting {workers} worker(s)")
            t0 = time.monotonic()
            procs = [stack.worker(f"{tag}-worker{i}") for i in range(workers)]
            moto_ticks0 = cpu_ticks(stack.moto_pid())
        while True:
            v, nv = stack.queue_counts()
            if v == 0 and nv == 0:
                break
            if time.monotonic() - t0 > 300:
                raise SystemExit(f"bench: error: the burst queue did not drain in 300 s ({v} + {nv} left)")
            time.sleep(0.05)
        drain = time.monotonic() - t0
        moto_cpu = (cpu_ticks(stack.moto_pid()) - moto_ticks0) / CLK_TCK / (time.monotonic() - t0) * 100
        worker_cpu = sum(cpu_ticks(p.pid) for p in procs) / CLK_TCK / drain * 100
        for p in procs:
            stop_proc(p)
        deploys, ok = 0, 0
        outcomes, job_ms = {}, {}
        for key, rid in last.items():
            fn = key[len("apps/"):-len(".zip")]
            versions = [x for x in stack.lam.list_versions_by_function(FunctionName=fn)["Versions"]
                        if x["Version"] != "$LATEST"]
            deploys += len(versions)
            r = stack.report(key, rid)
            current = stack.lam.get_function(FunctionName=fn)["Configuration"]["CodeSha256"]
            newest = max(versions, key=lambda x: int(x["Version"]))["CodeSha256"] if versions else None
            if r and r["outcome"] in ("deployed", "unchanged") and r["code_sha256"] == current == newest:
                ok += 1
        for page in stack.s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix="status/"):
            for o in page.get("Contents", []):
                r = json.load(stack.s3.get_object(Bucket=stack.bucket, Key=o["Key"])["Body"])
                outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
                job_ms.setdefault(r["outcome"], []).append(sum(r["timings_ms"].values()))
        jobs = FUNCTIONS * VERSIONS
        since = "first upload" if live else "workers started"
        figure(f"{tag}_upload_time", upload_s, f"s ({jobs} uploads, one client)")
        figure(f"{tag}_drain_time", drain, f"s ({since} -> queue empty)")
        figure(f"{tag}_jobs_per_s", jobs / drain, "jobs/s")
        figure(f"{tag}_deploys", deploys, f"versions published (target {FUNCTIONS})")
        figure(f"{tag}_newest_deployed", ok, f"of {FUNCTIONS} functions run their last upload")
        figure(f"{tag}_outcomes", " ".join(f"{k}={v}" for k, v in sorted(outcomes.items())), "reports")
        for k, v in sorted(job_ms.items()):
            figure(f"{tag}_{k.replace('-', '_')}_job_p50", pct(v, 50), "ms (sum of stages, from the reports)")
        figure(f"{tag}_moto_cpu", moto_cpu, "% of a core while draining (moto is one Python process)")
        figure(f"{tag}_workers_cpu", worker_cpu, "% of a core while draining (all workers)")
        return jobs / drain, deploys, ok, drain
    finally:
        stack.close()


# ---- 5. footprint ------------------------------------------------------------------------------

IDLE_SECS = 60
RSS_APP_MB = (20, 48, 200)


def bench_footprint():
    stack = Stack("idle", asg=1)
    try:
        worker = stack.worker("idle-worker", wait_secs=20)
        publisher = stack.publisher("idle-publisher", period=10)
        time.sleep(3)
        procs = {"worker": worker, "publisher": publisher}
        t0 = time.monotonic()
        ticks0 = {k: cpu_ticks(p.pid) for k, p in procs.items()}
        rss = {k: [] for k in procs}
        while time.monotonic() - t0 < IDLE_SECS:
            for k, p in procs.items():
                rss[k].append(proc_status(p.pid)["VmRSS"])
            time.sleep(1)
        elapsed = time.monotonic() - t0
        cpu = {k: (cpu_ticks(p.pid) - ticks0[k]) / CLK_TCK / elapsed * 100 for k, p in procs.items()}
        for k in procs:
            figure(f"idle_{k}_rss", max(rss[k]) / MB, f"MB (max of {len(rss[k])} samples over {IDLE_SECS} s)")
            figure(f"idle_{k}_cpu", cpu[k], "% of a core")
            row(f"idle {k}: RSS (MB) / CPU (% core)", f"{max(rss[k]) / MB:.1f} / {cpu[k]:.2f}",
                "-", "-", "< 30 / < 1", yes(max(rss[k]) < 30 * MB and cpu[k] < 1))
        idle_rss = max(rss["worker"])
        stop_proc(worker)
        stop_proc(publisher)
    finally:
        stack.close()

    # Peak RSS while processing apps of three sizes (random content, so the package is as big
    # as the app): a fresh worker each, on a fresh stack (moto would hand a message to the
    # stopped idle worker's abandoned long poll). 48 MB is the largest package Lambda takes
    # inline; above 50 MiB the worker streams it to S3 instead.
    stack = Stack("rss")
    try:
        hwm = {}
        for size_mb in RSS_APP_MB:
            rnd = random.Random(size_mb)
            chunk = 4_000_000
            files = [("app.py", b"def handler(event, context):\n    return 1\n")]
            files += [(f"assets/blob_{i:03d}.bin", rnd.randbytes(chunk)) for i in range(size_mb * MB // chunk)]
            body = zip_files(files, zipfile.ZIP_STORED)
            del files
            limit = str(300 * 1024 * 1024)
            w = stack.worker(f"rss-{size_mb}mb-worker", "--max-zip-bytes", limit, "--max-unpacked-bytes", limit)
            key = f"apps/bench-big-{size_mb}.zip"
            t = time.monotonic()
            rid = stack.upload(key, body)
            del body
            r = stack.wait_report(key, rid, 300, poll=0.1)
            total = time.monotonic() - t
            hwm[size_mb] = proc_status(w.pid)["VmHWM"]
            stop_proc(w)
            time.sleep(1.5)  # let the stopped worker's abandoned 1 s long poll expire in moto
            if r["outcome"] != "deployed":
                raise SystemExit(f"bench: error: {size_mb} MB app: {r['outcome']}: {r.get('error')}")
            stages = " ".join(f"{k}={v}" for k, v in r["timings_ms"].items())
            via = "S3 artifact" if r["package_bytes"] > 50 * 1024 * 1024 else "inline"
            figure(f"peak_rss_worker_{size_mb}mb_app", hwm[size_mb] / MB,
                   f"MB (VmHWM; package {r['package_bytes'] / MB:.0f} MB {via}, {total:.1f} s: {stages} ms)")
        lo, hi = min(hwm.values()), max(hwm.values())
        figure("peak_rss_spread", (hi - lo) / MB, f"MB (max - min over {', '.join(f'{m} MB' for m in RSS_APP_MB)} apps)")
        row(f"worker peak RSS, {' / '.join(f'{m}' for m in RSS_APP_MB)} MB apps (MB)",
            " / ".join(f"{hwm[m] / MB:.0f}" for m in RSS_APP_MB), f"idle {idle_rss / MB:.0f}",
            f"{hi / lo:.1f}x max/min", "flat (spread < 18 MB)", yes(hi - lo < 18 * MB))
    finally:
        stack.close()


# ---- main --------------------------------------------------------------------------------------

def print_table():
    print()
    print("| figure | value | baseline | ratio | target | met? |")
    print("| --- | ---: | --- | --- | --- | --- |")
    for r in ROWS:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print(flush=True)


def on_term(signum, frame):
    raise SystemExit(128 + signum)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="packaging,latency,native,verify,installers,burst,footprint,sim")
    p.add_argument("--prepare", action="store_true",
                   help="only generate the packaging trees (dev/bench.sh does it while the release build runs)")
    a = p.parse_args()
    only = set(a.only.split(","))
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    os.makedirs(BENCH, exist_ok=True)
    if a.prepare:
        for profile, _ in TREES:
            ensure_tree(profile)
        return
    for exe in (WORKER, PUBLISHER, PACKAGE_TREE):
        if not os.access(exe, os.X_OK):
            raise SystemExit(f"bench: error: {exe} is missing; run `cargo build --release --bins --features auto-lambda-worker/bench-tools`")
    started = time.monotonic()
    try:
        if "packaging" in only:
            log("1/5 packaging throughput")
            bench_packaging()
        if only & {"latency", "native"}:
            stack = Stack("latency")
            try:
                shutil.rmtree(os.path.join(BENCH, "cache"), ignore_errors=True)  # cold means cold
                worker = stack.worker("latency-worker")
                if "latency" in only:
                    log(f"2/5 upload-to-deploy latency ({LATENCY_UPLOADS} uploads)")
                    bench_latency(stack, worker)
                if "native" in only:
                    log("3/5 warm redeploy vs cold build (examples/python-native)")
                    bench_native(stack)
                stop_proc(worker)
            finally:
                stack.close()
        if "installers" in only:
            log(f"3c/5 cold install, uv vs pip ({'+'.join(INSTALL_SET)}, {INSTALL_RUNS} runs each)")
            bench_installers()
        if "verify" in only:
            log(f"3b/5 verification on the warm path ({VERIFY_REDEPLOYS} redeploys, on and off)")
            bench_verify()
        if "burst" in only:
            log("4/5 burst: 200 uploads over 20 functions, 1 worker then 3")
            one = bench_burst(1)
            three = bench_burst(3)
            live = bench_burst(3, live=True)
            for w, (jps, deploys, ok, drain) in ((1, one), (3, three)):
                row(f"burst, {w} worker{'s' if w > 1 else ''} (jobs/s)", f"{jps:.1f}",
                    "-" if w == 1 else f"1 worker {one[0]:.1f}", "-" if w == 1 else f"{jps / one[0]:.2f}x",
                    f"{FUNCTIONS} deploys, newest", yes(deploys == FUNCTIONS and ok == FUNCTIONS))
                row(f"  deploys / newest / drain (s), {w}w", f"{deploys} / {ok} / {drain:.1f}", "-", "-", "-", "-")
            jps, deploys, ok, drain = live
            row("burst, 3 workers already polling (jobs/s)", f"{jps:.1f}", "-", "-", "- (informative)", "-")
            row("  deploys / newest / drain (s), live 3w", f"{deploys} / {ok} / {drain:.1f}", "-", "-",
                f"newest: {FUNCTIONS}", yes(ok == FUNCTIONS))
        if "footprint" in only:
            log(f"5/5 footprint ({IDLE_SECS} s idle, then 20 MB and 200 MB apps)")
            bench_footprint()
    finally:
        cleanup()
    figure("bench_runtime", time.monotonic() - started, "s (benchmarks only)")
    print_table()
    if "sim" in only:
        # The policies side by side (today's visible-only default, in-flight-aware, in-flight-aware
        # with a warm pool), then the publish-period comparison the README's older table came from.
        print("Scaling simulator (dev/scaling_sim.py):", flush=True)
        subprocess.run([PY, os.path.join(ROOT, "dev/scaling_sim.py")], check=True)
        print("\nScaling simulator, publish periods (dev/scaling_sim.py --periods --markdown-only):", flush=True)
        subprocess.run([PY, os.path.join(ROOT, "dev/scaling_sim.py"), "--periods", "--markdown-only"], check=True)


if __name__ == "__main__":
    main()
