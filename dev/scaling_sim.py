#!/usr/bin/env python3
"""A scaling model of the worker fleet, to choose the publisher's defaults with.

Queue + Auto Scaling group + target tracking on BacklogPerInstance, fed deterministic arrival
traces (steady, bursty, one-off spike, diurnal), for four ways of feeding the policy:

    1s           the publisher every 1 s, alarms on 10 s periods (high resolution, Average)
    10s          the publisher every 10 s (the default), alarms on 10 s periods
    60s          the publisher every 60 s, alarms on 60 s periods
    builtin5min  no publisher: CloudWatch's own AWS/SQS ApproximateNumberOfMessagesVisible,
                 delivered every 5 minutes, divided by InService with metric math, 60 s periods

For each it reports the time to first scale-out (first job's arrival -> first launch decision),
the 95th-percentile wait of a job in the queue, and instance-hours (booting + InService).

    python3 dev/scaling_sim.py                    figures, one per line, then a markdown table
    python3 dev/scaling_sim.py --markdown-only    the table only (for the README)
    python3 dev/scaling_sim.py --json             everything as JSON
    python3 dev/scaling_sim.py --phase-sweep 20   mean (min-max) over 20 wall-clock phases
    python3 dev/scaling_sim.py --events --traces spike --configs builtin5min   scaling decisions
    python3 dev/scaling_sim.py --explain          the model's assumptions

Standard library only; a 1-second loop, well under a second for the default run. The model
(what AWS documents, and the simplifications) is in MODEL below.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field, replace

MODEL = """\
Model (times in seconds, one step per second, the wall clock is trace time + phase):
- Queue: FIFO. A job is visible from its arrival until a free slot of an InService worker takes
  it (long polling: the same second). Each worker runs `concurrency` jobs at once. Job durations
  are lognormal (mean `job_mean`, sigma `job_sigma`), drawn once per trace with a fixed seed, so
  every configuration sees the same jobs.
- Group: min..max instances. A launched instance boots for `boot` s (Pending, billed), then is
  InService. A worker holding a job is protected from scale-in (the worker protects itself);
  lowering the desired capacity below the instance count terminates idle instances (oldest first)
  now and busy ones as soon as they are idle (AWS: the desired capacity is decremented, protected
  instances stay until unprotected).
- Metric: BacklogPerInstance = visible / max(InService, 1), sampled every publish period P on the
  wall clock. The alarm datapoint of a period [w-A, w) is the Average of the samples taken inside
  it, evaluated at w (so a datapoint describes the past period, never the current second).
  builtin5min: the visible count the alarm sees is the queue's count at the last 5-minute
  boundary of the wall clock (held for 300 s: delivered every 5 minutes), divided by the current
  InService count (metric math), on 60 s periods.
- Target tracking (as AWS documents it): a high alarm, metric > target for 3 consecutive periods,
  and a low alarm, metric < 90 % of target for 15 consecutive periods. While an alarm stays in
  ALARM the policy runs again every period. New capacity = ceil(max(InService, 1) * metric /
  target), within min..max, with the latest datapoint as metric and InService as it is when the
  policy runs (--capacity-basis sampled: as it was when the metric was sampled, which amounts to
  ceil(visible / target); "current" overshoots when instances come into service between the
  sample and the evaluation, more so with long periods). Scale-out raises the desired capacity
  only above its current value, which already counts instances still booting or warming, so
  warming instances do not re-trigger it. Scale-in is blocked while any instance is within its
  warm-up (`warmup` s from launch) and for `scale_in_cooldown` s after the previous scale-in; it
  removes at most `scale_in_step` instances per action (0 = down to the computed capacity).
- Scaling from zero: with no InService instance the metric is visible / 1, so target tracking
  scales out once more than `target` jobs wait for 3 periods. The stack's wake-up alarm
  (infra/compute.tf: Visible >= 1 (Maximum, 60 s) while the desired capacity is 0 -> +1
  instance) is modelled too unless --no-wake; --wake-period 10 makes it a high-resolution alarm
  for the 1s and 10s publishers; for builtin5min it reads the 5-minute SQS metric. Without it,
  up to `target` jobs can wait forever in front of an empty group (metric = target, not above).
- Phase: where t=0 falls in the wall clock's 5-minute cycle decides much of the time to first
  scale-out (up to 300 s for builtin5min); --phase-sweep N reports mean (min-max) over N phases.
- After the horizon no more jobs arrive; the run continues until the queue is empty and the group
  is back to zero (or `drain_cap` s), and instance-hours include that tail.
- Not modelled: CloudWatch ingestion and alarm-evaluation latency, the Auto Scaling API's own
  delay, EC2 launch failures, SQS's approximate counts, visibility-timeout redeliveries, the SQS
  metrics pause of queues idle for 6 hours, and the ~1 minute delay of the ASG's group metrics.
"""

CONFIGS = {
    # name: (publish period s, alarm period s, built-in 5-minute SQS metric)
    "1s": (1, 10, False),
    "10s": (10, 10, False),
    "60s": (60, 60, False),
    "builtin5min": (60, 60, True),
}
TRACES = ("steady", "bursty", "spike", "diurnal")


@dataclass
class Params:
    horizon: int = 4 * 3600
    seed: int = 1
    phase: int | None = None  # wall-clock offset of t=0 (s); None: drawn from the seed, 0..299
    min_size: int = 0
    max_size: int = 20
    concurrency: int = 2
    job_mean: float = 30.0
    job_sigma: float = 0.5
    boot: int = 90
    warmup: int = 300
    target: float = 2.0
    low_ratio: float = 0.9
    high_datapoints: int = 3
    low_datapoints: int = 15
    scale_in_cooldown: int = 300
    scale_in_step: int = 0
    builtin_interval: int = 300
    wake: bool = True
    wake_period: int = 10  # the wake-up alarm's period on the publisher's Visible and DesiredCapacity (infra/compute.tf: 10 s)
    capacity_basis: str = "current"  # "current": max(InService now, 1); "sampled": InService when sampled
    drain_cap: int = 3 * 3600
    # traces
    steady_rate: float = 0.05
    burst_rate: float = 0.3
    burst_on: int = 600
    burst_off: int = 1200
    spike_jobs: int = 200
    spike_at: int = 600
    diurnal_peak: float = 0.15


def effective_phase(p: Params) -> int:
    if p.phase is not None:
        return p.phase
    return random.Random(p.seed * 7919 + 17).randrange(p.builtin_interval)


# ---------------------------------------------------------------------------------------------
# Traces: lists of (arrival second, duration seconds), sorted.


def _durations(rng: random.Random, n: int, p: Params) -> list[int]:
    mu = math.log(p.job_mean) - p.job_sigma**2 / 2
    return [max(1, round(rng.lognormvariate(mu, p.job_sigma))) for _ in range(n)]


def _poisson_times(rng: random.Random, rate_fn, rate_max: float, start: float, end: float) -> list[int]:
    """Arrival seconds of a (non-homogeneous, by thinning) Poisson process on [start, end)."""
    out = []
    t = start
    while True:
        t += rng.expovariate(rate_max)
        if t >= end:
            return out
        if rng.random() * rate_max <= rate_fn(t):
            out.append(int(t))


def make_trace(name: str, p: Params) -> list[tuple[int, int]]:
    rng = random.Random(p.seed * 1000 + TRACES.index(name))
    h = p.horizon
    if name == "steady":
        times = _poisson_times(rng, lambda t: p.steady_rate, p.steady_rate, 0, h)
    elif name == "bursty":
        cycle = p.burst_on + p.burst_off
        times = _poisson_times(rng, lambda t: p.burst_rate if (t % cycle) < p.burst_on else 0.0, p.burst_rate, 0, h)
    elif name == "spike":
        times = [p.spike_at] * p.spike_jobs if p.spike_at < h else []
    elif name == "diurnal":
        peak = p.diurnal_peak
        times = _poisson_times(rng, lambda t: peak * (1 - math.cos(2 * math.pi * t / h)) / 2, peak, 0, h)
    else:
        raise ValueError(f"unknown trace {name!r}")
    return list(zip(times, _durations(rng, len(times), p)))


# ---------------------------------------------------------------------------------------------
# The simulation.


class Instance:
    __slots__ = ("launch", "ready", "jobs")

    def __init__(self, launch: int, ready: int):
        self.launch = launch
        self.ready = ready
        self.jobs: list[int] = []  # finish times of the jobs it runs


@dataclass
class Result:
    trace: str
    config: str
    jobs: int
    processed: int
    first_arrival: int | None
    first_scaleout: int | None  # seconds from the first arrival to the first launch decision
    p50_wait: float | None
    p95_wait: float | None
    max_wait: float | None
    instance_hours: float
    peak_instances: int
    launches: int
    end_time: int
    scaleout_decisions: list[int] = field(default_factory=list)


def percentile(values: list[int], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    k = max(1, math.ceil(q / 100 * len(s)))
    return float(s[k - 1])


def simulate(
    trace: list[tuple[int, int]], config: str, p: Params, trace_name: str = "", log: list | None = None
) -> Result:
    """Runs one trace under one configuration. `log`, if given, receives (t, event, detail) tuples."""
    publish_period, alarm_period, builtin = CONFIGS[config]
    phase = effective_phase(p)
    conc = p.concurrency
    target = p.target
    low_threshold = p.low_ratio * target

    queue: collections.deque[tuple[int, int]] = collections.deque()
    live: list[Instance] = []
    desired = p.min_size
    ai = 0
    n = len(trace)
    waits: list[int] = []
    inst_seconds = 0
    peak = 0
    launches = 0
    next_finish = math.inf  # earliest finish time of a running job

    # alarm state
    history: collections.deque[float] = collections.deque(maxlen=max(p.high_datapoints, p.low_datapoints))
    bucket_sum = 0.0
    bucket_vis = 0  # sum of the visible counts behind the datapoint (for capacity_basis="sampled")
    bucket_n = 0
    wake_period = max(p.wake_period, alarm_period)
    sampled_basis = p.capacity_basis == "sampled"
    wake_max = 0  # Maximum of Visible datapoints in the current wake period
    stale_visible = 0  # builtin: the count delivered at the last 5-minute boundary
    last_scale_in = -math.inf
    decisions: list[int] = []

    first_arrival = trace[0][0] if trace else None
    cap_end = max(p.horizon, trace[-1][0] + 1 if trace else 0) + p.drain_cap

    t = 0
    while True:
        if ai >= n and t >= p.horizon and not queue and not live:
            break
        if t >= cap_end:
            break
        w = t + phase

        # 1. arrivals
        while ai < n and trace[ai][0] <= t:
            queue.append(trace[ai])
            ai += 1

        # 2. boots complete, jobs finish, free slots take queued jobs
        in_service = 0
        if live:
            finishing = next_finish <= t
            if finishing:
                next_finish = math.inf
            for inst in live:
                if inst.ready > t:
                    continue
                in_service += 1
                jobs = inst.jobs
                if finishing and jobs:
                    inst.jobs = jobs = [f for f in jobs if f > t]
                while queue and len(jobs) < conc:
                    a, d = queue.popleft()
                    waits.append(t - a)
                    jobs.append(t + d)
                for f in jobs:
                    if f < next_finish:
                        next_finish = f
        visible = len(queue)

        # 3. alarms evaluate the period that just ended, [w - A, w)
        if w % alarm_period == 0 and bucket_n:
            value = bucket_sum / bucket_n
            mean_visible = bucket_vis / bucket_n
            bucket_sum = 0.0
            bucket_vis = 0
            bucket_n = 0
            history.append(value)
            hd = p.high_datapoints
            ld = p.low_datapoints
            # new capacity = ceil(capacity * metric / target); "sampled" uses the capacity the metric
            # was computed with, i.e. ceil(visible / target)
            need = mean_visible if sampled_basis else max(in_service, 1) * value
            if len(history) >= hd and all(history[-i] > target for i in range(1, hd + 1)):
                computed = min(p.max_size, max(p.min_size, math.ceil(need / target - 1e-9)))
                if computed > desired:
                    if log is not None:
                        log.append((t, "scale-out", f"in_service={in_service} live={len(live)} visible={visible} "
                                    f"metric={value:.2f} desired {desired}->{computed}"))
                    desired = computed
                    decisions.append(t)
            elif len(history) >= ld and all(history[-i] < low_threshold for i in range(1, ld + 1)):
                warming = any(t < inst.launch + p.warmup for inst in live)
                if not warming and t >= last_scale_in + p.scale_in_cooldown:
                    computed = min(p.max_size, max(p.min_size, math.ceil(need / target - 1e-9)))
                    if computed < desired:
                        if p.scale_in_step > 0:
                            computed = max(computed, desired - p.scale_in_step)
                        if log is not None:
                            log.append((t, "scale-in", f"in_service={in_service} live={len(live)} "
                                        f"metric={value:.2f} desired {desired}->{computed}"))
                        desired = computed
                        last_scale_in = t
        if p.wake and w % wake_period == 0:
            if wake_max >= 1 and desired == 0:
                if log is not None:
                    log.append((t, "wake", f"visible_max={wake_max} desired 0->1"))
                desired = min(p.max_size, 1)
                decisions.append(t)
            wake_max = 0

        # 4. the metric: the publisher's sample (or the built-in metric's datapoint) at w
        if builtin and w % p.builtin_interval == 0:
            stale_visible = visible
        if w % publish_period == 0:
            seen = stale_visible if builtin else visible
            bucket_sum += seen / max(in_service, 1)
            bucket_vis += seen
            bucket_n += 1
            if seen > wake_max:
                wake_max = seen

        # 5. the group converges on the desired capacity
        count = len(live)
        if count < desired:
            for _ in range(desired - count):
                live.append(Instance(t, t + p.boot))
            launches += desired - count
        elif count > desired:
            excess = count - desired
            # unprotected = holding no job; oldest first (OldestLaunchTemplate, OldestInstance)
            keep = []
            for inst in live:  # live is in launch order
                if excess and not inst.jobs:
                    excess -= 1
                    inst_seconds += t - inst.launch
                else:
                    keep.append(inst)
            live = keep
        if len(live) > peak:
            peak = len(live)
        t += 1

    for inst in live:
        inst_seconds += t - inst.launch

    first_scaleout = None
    if first_arrival is not None and decisions:
        first_scaleout = decisions[0] - first_arrival
    return Result(
        trace=trace_name,
        config=config,
        jobs=n,
        processed=len(waits),
        first_arrival=first_arrival,
        first_scaleout=first_scaleout,
        p50_wait=percentile(waits, 50),
        p95_wait=percentile(waits, 95),
        max_wait=float(max(waits)) if waits else None,
        instance_hours=inst_seconds / 3600,
        peak_instances=peak,
        launches=launches,
        end_time=t,
        scaleout_decisions=decisions,
    )


def run_all(p: Params, traces=TRACES, configs=tuple(CONFIGS)) -> list[Result]:
    out = []
    for name in traces:
        trace = make_trace(name, p)
        for c in configs:
            out.append(simulate(trace, c, p, name))
    return out


# ---------------------------------------------------------------------------------------------
# Output.


def _fmt(v, digits=0) -> str:
    if v is None:
        return "n/a"
    if digits == 0:
        return str(int(round(v)))
    return f"{v:.{digits}f}"


def acceptance(results: list[Result], fast="10s", slow="builtin5min", factor=5.0) -> dict[str, dict]:
    """Per trace: is `fast`'s first scale-out >= factor x shorter than `slow`'s, at no more
    instance-hours?"""
    by = {(r.trace, r.config): r for r in results}
    out = {}
    for trace in dict.fromkeys(r.trace for r in results):
        a, b = by.get((trace, fast)), by.get((trace, slow))
        if not a or not b:
            continue
        ratio = None
        if a.first_scaleout is not None and b.first_scaleout is not None:
            ratio = b.first_scaleout / max(a.first_scaleout, 1)
        faster = ratio is not None and ratio >= factor
        cheaper = a.instance_hours <= b.instance_hours + 1e-9
        out[trace] = {
            "speedup": ratio,
            "instance_hours_delta": a.instance_hours - b.instance_hours,
            "faster": faster,
            "no_more_instance_hours": cheaper,
            "pass": faster and cheaper,
        }
    return out


def markdown_table(results: list[Result]) -> str:
    lines = [
        "| trace | config | first scale-out (s) | p95 wait (s) | instance-hours |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        p95 = _fmt(r.p95_wait)
        if r.processed < r.jobs:
            p95 += f" ({r.jobs - r.processed} stranded)"
        lines.append(f"| {r.trace} | {r.config} | {_fmt(r.first_scaleout)} | {p95} | {r.instance_hours:.2f} |")
    return "\n".join(lines)


def figure_lines(results: list[Result], acc: dict[str, dict]) -> list[str]:
    out = []
    for r in results:
        k = f"sim_{r.trace}_{r.config}"
        out.append(f"{k}_first_scaleout: {_fmt(r.first_scaleout)} s")
        out.append(f"{k}_p95_wait: {_fmt(r.p95_wait)} s")
        out.append(f"{k}_instance_hours: {r.instance_hours:.2f} h")
        if r.processed < r.jobs:
            out.append(f"{k}_stranded_jobs: {r.jobs - r.processed} jobs")
    for trace, a in acc.items():
        out.append(f"sim_{trace}_first_scaleout_speedup_10s_vs_builtin5min: {_fmt(a['speedup'], 1)} x")
        out.append(f"sim_{trace}_instance_hours_10s_minus_builtin5min: {a['instance_hours_delta']:+.2f} h")
        out.append(f"sim_{trace}_acceptance: {'pass' if a['pass'] else 'fail'}")
    return out


def phase_sweep(p: Params, n: int, traces=TRACES, configs=tuple(CONFIGS)) -> list[dict]:
    """The same runs at n wall-clock phases spread over the 5-minute cycle: where a trace's first
    job falls relative to the publish, alarm and 5-minute boundaries decides much of the time to
    first scale-out. Returns per (trace, config) the mean, min and max of each figure."""
    golden = (math.sqrt(5) - 1) / 2  # a Weyl sequence covers both the 5-minute and the 10 s position
    phases = [int(p.builtin_interval * ((0.5 + i * golden) % 1.0)) for i in range(n)]
    runs = [run_all(replace(p, phase=ph), traces, configs) for ph in phases]
    out = []
    for j, r0 in enumerate(runs[0]):
        rs = [run[j] for run in runs]
        row = {"trace": r0.trace, "config": r0.config}
        for key in ("first_scaleout", "p95_wait", "instance_hours"):
            vals = [getattr(r, key) for r in rs if getattr(r, key) is not None]
            row[key] = {"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals)} if vals else None
        out.append(row)
    return out


def sweep_acceptance(rows: list[dict], fast="10s", slow="builtin5min", factor=5.0) -> dict[str, dict]:
    by = {(r["trace"], r["config"]): r for r in rows}
    out = {}
    for trace in dict.fromkeys(r["trace"] for r in rows):
        a, b = by.get((trace, fast)), by.get((trace, slow))
        if not a or not b or not a["first_scaleout"] or not b["first_scaleout"]:
            continue
        ratio = b["first_scaleout"]["mean"] / max(a["first_scaleout"]["mean"], 1)
        cheaper = a["instance_hours"]["mean"] <= b["instance_hours"]["mean"] + 1e-9
        out[trace] = {"speedup": ratio, "pass": ratio >= factor and cheaper,
                      "instance_hours_delta": a["instance_hours"]["mean"] - b["instance_hours"]["mean"]}
    return out


def sweep_table(rows: list[dict]) -> str:
    def f(c, digits=0):
        if c is None:
            return "n/a"
        return f"{_fmt(c['mean'], digits)} ({_fmt(c['min'], digits)}–{_fmt(c['max'], digits)})"

    lines = [
        "| trace | config | first scale-out (s) | p95 wait (s) | instance-hours |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['trace']} | {r['config']} | {f(r['first_scaleout'])} | {f(r['p95_wait'])} | "
                     f"{f(r['instance_hours'], 2)} |")
    return "\n".join(lines)


def parse_args(argv=None) -> tuple[argparse.Namespace, Params]:
    d = Params()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--horizon", type=int, default=d.horizon, help="seconds of arrivals (default 4 h)")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--phase", type=int, default=None,
                    help="wall-clock offset of t=0 in s (aligns publish, alarm and 5-minute boundaries); default drawn from the seed")
    ap.add_argument("--markdown-only", action="store_true", help="print only the markdown table")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--phase-sweep", type=int, default=0, metavar="N",
                    help="instead: N runs at phases spread over the 5-minute cycle; mean (min–max) per figure")
    ap.add_argument("--events", action="store_true",
                    help="print every scaling decision instead (best with one trace and one config)")
    ap.add_argument("--explain", action="store_true", help="print the model's assumptions and exit")
    ap.add_argument("--traces", default=",".join(TRACES), help="comma-separated subset of " + ",".join(TRACES))
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ",".join(CONFIGS))
    ap.add_argument("--max-size", type=int, default=d.max_size)
    ap.add_argument("--concurrency", type=int, default=d.concurrency, help="jobs per worker")
    ap.add_argument("--job-seconds", type=float, default=d.job_mean, help="mean job duration (lognormal)")
    ap.add_argument("--boot", type=int, default=d.boot, help="launch to InService, s")
    ap.add_argument("--warmup", type=int, default=d.warmup, help="instance warm-up, s from launch")
    ap.add_argument("--target", type=float, default=d.target, help="BacklogPerInstance target")
    ap.add_argument("--scale-in-cooldown", type=int, default=d.scale_in_cooldown)
    ap.add_argument("--scale-in-step", type=int, default=d.scale_in_step, help="max instances removed per scale-in (0: no limit)")
    ap.add_argument("--no-wake", action="store_true", help="without the wake-up alarm (pure target tracking)")
    ap.add_argument("--wake-period", type=int, default=d.wake_period,
                    help="wake-up alarm period for the 1s/10s publishers (10 = high-resolution alarm); 60 otherwise")
    ap.add_argument("--capacity-basis", choices=("current", "sampled"), default=d.capacity_basis,
                    help="capacity target tracking multiplies the metric by: InService now (default) or when sampled")
    a = ap.parse_args(argv)
    p = replace(d, horizon=a.horizon, seed=a.seed, phase=a.phase, max_size=a.max_size, concurrency=a.concurrency,
                job_mean=a.job_seconds, boot=a.boot, warmup=a.warmup, target=a.target,
                scale_in_cooldown=a.scale_in_cooldown, scale_in_step=a.scale_in_step, wake=not a.no_wake,
                wake_period=a.wake_period, capacity_basis=a.capacity_basis)
    for t in a.traces.split(","):
        if t not in TRACES:
            ap.error(f"unknown trace {t!r}")
    for c in a.configs.split(","):
        if c not in CONFIGS:
            ap.error(f"unknown config {c!r}")
    return a, p


def main(argv=None) -> int:
    a, p = parse_args(argv)
    if a.explain:
        print(MODEL)
        return 0
    traces, configs = tuple(a.traces.split(",")), tuple(a.configs.split(","))
    if a.phase_sweep > 0:
        started = time.perf_counter()
        rows = phase_sweep(p, a.phase_sweep, traces, configs)
        elapsed = time.perf_counter() - started
        acc = sweep_acceptance(rows)
        if a.json:
            print(json.dumps({"params": asdict(p), "phases": a.phase_sweep, "rows": rows, "acceptance": acc,
                              "elapsed_seconds": round(elapsed, 3)}, indent=2))
            return 0
        if not a.markdown_only:
            for r in rows:
                k = f"sim_sweep_{r['trace']}_{r['config']}"
                for key, unit, d in (("first_scaleout", "s", 0), ("p95_wait", "s", 0), ("instance_hours", "h", 2)):
                    print(f"{k}_{key}_mean: {_fmt(r[key]['mean'] if r[key] else None, d)} {unit}")
            for trace, x in acc.items():
                print(f"sim_sweep_{trace}_first_scaleout_speedup_10s_vs_builtin5min: {_fmt(x['speedup'], 1)} x")
                print(f"sim_sweep_{trace}_acceptance: {'pass' if x['pass'] else 'fail'}")
            print(f"sim_runtime: {elapsed:.1f} s")
            print()
            print(f"Mean (min–max) over {a.phase_sweep} phases of the 5-minute cycle.")
            print()
        print(sweep_table(rows))
        return 0
    if a.events:
        for name in traces:
            trace = make_trace(name, p)
            for c in configs:
                log: list = []
                simulate(trace, c, p, name, log)
                for t, kind, detail in log:
                    print(f"{name} {c} t={t} {kind} {detail}")
        return 0
    started = time.perf_counter()
    results = run_all(p, traces, configs)
    elapsed = time.perf_counter() - started
    acc = acceptance(results)
    if a.json:
        print(json.dumps({
            "params": {**asdict(p), "phase": effective_phase(p)},
            "results": [{k: v for k, v in asdict(r).items() if k != "scaleout_decisions"} for r in results],
            "acceptance": acc,
            "elapsed_seconds": round(elapsed, 3),
        }, indent=2))
        return 0
    if not a.markdown_only:
        print("\n".join(figure_lines(results, acc)))
        print(f"sim_runtime: {elapsed:.1f} s")
        print()
        print(f"Horizon {p.horizon} s, seed {p.seed}, phase {effective_phase(p)} s, max {p.max_size} instances x "
              f"{p.concurrency} jobs, jobs ~{p.job_mean:g} s, boot {p.boot} s, warm-up {p.warmup} s, target {p.target:g}, "
              f"wake-up alarm {f'{p.wake_period} s' if p.wake else 'off'}, capacity basis {p.capacity_basis}.")
        print()
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
