#!/usr/bin/env python3
"""A scaling model of the worker fleet, to choose the publisher's and the group's defaults with.

Queue + Auto Scaling group (optionally with a warm pool) + target tracking, fed deterministic
arrival traces (steady, bursty, one-off spike, diurnal, trickle), for these ways of scaling:

    10s                today's default: BacklogPerInstance (visible only), published every 10 s,
                       alarms on 10 s periods, target `target` (2), cold launches only
    inflight-10s       WorkPerInstance ((visible + in flight) / InService), same periods,
                       target `work_target`, cold launches only
    inflight-10s-pool  the same plus a warm pool of stopped, pre-initialised instances
                       (reuse on scale-in): the proposed default

and, for the publish-period comparison (--periods), on BacklogPerInstance:

    1s           the publisher every 1 s, alarms on 10 s periods (high resolution, Average)
    10s          the publisher every 10 s, alarms on 10 s periods
    60s          the publisher every 60 s, alarms on 60 s periods
    builtin5min  no publisher: CloudWatch's own AWS/SQS ApproximateNumberOfMessagesVisible,
                 delivered every 5 minutes, divided by InService with metric math, 60 s periods

For each it reports the time to first scale-out (first job's arrival -> first launch decision),
the 95th and 99th percentile wait of a job in the queue, instance-hours (running: booting,
InService, and warm-pool instances while they initialise), the warm pool's stopped
instance-hours (they cost EBS only) and the jobs interrupted by scale-in.

    python3 dev/scaling_sim.py                    figures, one per line, then a markdown table
    python3 dev/scaling_sim.py --markdown-only    the table only (for the README)
    python3 dev/scaling_sim.py --json             everything as JSON
    python3 dev/scaling_sim.py --phase-sweep 20   mean (min-max) over 20 wall-clock phases
    python3 dev/scaling_sim.py --periods          the 1s/10s/60s/builtin5min comparison instead
    python3 dev/scaling_sim.py --events --traces spike --configs builtin5min   scaling decisions
    python3 dev/scaling_sim.py --explain          the model's assumptions

Standard library only; a 1-second loop, about a second for the default run. The model (what AWS
documents, and the simplifications) is in MODEL below.
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
  it (long polling: the same second); then it is in flight (ApproximateNumberOfMessagesNotVisible)
  until it finishes. Each worker runs `concurrency` jobs at once. Job durations are lognormal
  (mean `job_mean`, sigma `job_sigma`), drawn once per trace with a fixed seed, so every
  configuration sees the same jobs. A job's wait is from its arrival to its first start.
- Group: min..max instances. A cold launch boots for `boot` s (Pending, billed), then is
  InService. A worker holding a job is protected from scale-in (the worker protects itself;
  --no-protection turns that off); lowering the desired capacity below the instance count removes
  unprotected instances (oldest first) now and busy ones as soon as they are idle (AWS: the desired
  capacity is decremented, protected instances stay until unprotected). An instance removed while
  it holds jobs counts as "interrupted by scale-in" (its jobs go back to the front of the queue);
  with protection this cannot happen, and the count says so from the simulation's own state.
- Metrics, sampled every publish period P on the wall clock:
    BacklogPerInstance = visible / max(InService, 1)                (today's scaling metric)
    WorkPerInstance    = (visible + in flight) / max(InService, 1)  (the in-flight-aware one)
  The alarm datapoint of a period [w-A, w) is the Average of the samples taken inside it,
  evaluated at w (so a datapoint describes the past period, never the current second).
  builtin5min: the visible count the alarm sees is the queue's count at the last 5-minute
  boundary of the wall clock (held for 300 s: delivered every 5 minutes), divided by the current
  InService count (metric math), on 60 s periods.
- Targets. BacklogPerInstance: `target` (2). WorkPerInstance: `work_target` (2). WorkPerInstance
  counts the jobs a worker runs, so with `concurrency` 2 a target of 2 means "every instance
  full": the group grows once work has waited for three periods. A target just under 2 (1.9)
  grows it once every slot has been busy for three periods, before anyone waits: about 10 s less
  p95 wait on steady and diurnal, for about 18 % more instance-hours on steady and 2 % more on
  trickle (--sweep-targets). 2 is kept: it meets the wait goal at the lower cost.
- From an empty group a job waits for the wake-up alarm (sampled on the 10 s grid, then a 10 s
  alarm period: 10-20 s) plus a start (warm `warm_start` or cold `boot`), whatever the metric:
  a trace whose jobs mostly find the group empty (trickle) has a p95 wait of about
  20 s + warm_start.
- Target tracking (as AWS documents it): a high alarm, metric > target for 3 consecutive periods,
  and a low alarm, metric < 90 % of target for 15 consecutive periods. While an alarm stays in
  ALARM the policy runs again every period. New capacity = ceil(max(InService, 1) * metric /
  target), within min..max, with the latest datapoint as metric and InService as it is when the
  policy runs (--capacity-basis sampled: as it was when the metric was sampled, which amounts to
  ceil(visible / target); "current" overshoots when instances come into service between the
  sample and the evaluation, more so with long periods). Scale-out raises the desired capacity
  only above its current value, which already counts instances still booting or warming, so
  warming instances do not re-trigger it. Scale-in is blocked while any instance is within its
  warm-up (`warmup` s from launch or from leaving the warm pool) and for `scale_in_cooldown` s
  after the previous scale-in; it removes at most `scale_in_step` instances per action (0 = down
  to the computed capacity). `warmup` 300 s is AWS's default; the stack sets 120 s
  (infra/variables.tf instance_warmup_seconds), which --warmup 120 runs. Both are kept as they
  were so that the older figures reproduce.
- Warm pool (AWS's warm pools, pool state Stopped, ReuseOnScaleIn true; only the "-pool" policy):
  * Size: max(pool_min_size, prepared - max(desired, instances in the group)), prepared being
    `pool_max_prepared` (MaxGroupPreparedCapacity) or, unset, the group's max size. AWS documents
    the size as MaxGroupPreparedCapacity (or max size) minus the desired capacity, at least
    MinSize, and MaxGroupPreparedCapacity as the most instances "in the warm pool or in any state
    except Terminated"; the max(desired, instances) is that cap while protected instances outlast
    a scale-in. (Sources: Amazon EC2 Auto Scaling User Guide, "Decrease latency for applications
    with long boot times using warm pools", and the PutWarmPool API reference.)
  * Scale-out takes a Warmed:Stopped instance first: it is InService `warm_start` s later. With
    none stopped it launches cold (`boot` s), as AWS does when demand depletes the pool ("Use
    lifecycle hooks with a warm pool"). Instances still initialising in the pool are not drawn
    (an assumption, the conservative one).
  * Scale-in returns the idle instance to the pool (stopping, available `pool_return` s later,
    not billed: EC2 does not bill a stopping instance). A pool below its size launches instances
    into it: they boot `boot` s, running and billed as instance-hours, then stop. Above its size,
    the newest pool instances are terminated.
  * Stopped pool instances are not instance-hours; their hours are reported apart
    ("pool stopped-hours") because they cost their EBS volume (`ebs_gb` GiB gp3 at
    `ebs_usd_per_gb_month`). At t=0 the pool is already full and stopped (the stack has been up
    for a while; its one-off initial fill is not counted).
  * `warm_start` default 21 s, the figure the issue asks for ("about 20 s"): a plain EC2 start
    of a stopped Amazon Linux 2023 instance to SSH-ready measured 21 s (m7i.large;
    brevdev/ec2-coldboot-research, docs/start-stopped-results.md). It leaves out Auto Scaling's
    own activity and the worker's start (docker, the unit). The one public measurement of a
    start from an Auto Scaling warm pool found is longer: "Launching a new EC2 instance from
    warm pool ... Duration: 36s" (the scaling activity, start to end) in AWS's EC2 Auto Scaling
    workshop, awslabs/ec2-spot-workshops,
    content/efficient-and-resilient-ec2-auto-scaling/lab1/100-launch-from-warm-pool.md (the same
    workshop's cold launch: 243 s). --warm-start 36 runs that case: trickle's p95 wait is then
    about 55 s, over the 40 s goal (a trickle job mostly waits for the wake-up alarm plus a warm
    start), while steady and diurnal stay within it.
"""


@dataclass(frozen=True)
class Policy:
    """How the group is scaled: what is published how often, and where new instances come from."""

    publish: int  # publish period, s
    alarm: int  # alarm period, s
    builtin: bool = False  # CloudWatch's own 5-minute SQS metric instead of the publisher's
    metric: str = "visible"  # "visible": BacklogPerInstance; "work": WorkPerInstance
    warm_pool: bool = False
    label: str = ""


CONFIGS = {
    "1s": Policy(1, 10, label="visible-only 1 s"),
    "10s": Policy(10, 10, label="visible-only 10 s (today)"),
    "60s": Policy(60, 60, label="visible-only 60 s"),
    "builtin5min": Policy(60, 60, builtin=True, label="SQS 5-min"),
    "inflight-10s": Policy(10, 10, metric="work", label="in-flight-aware 10 s"),
    "inflight-10s-pool": Policy(10, 10, metric="work", warm_pool=True, label="in-flight-aware 10 s + warm pool"),
}
OLD_DEFAULT = "10s"
NEW_DEFAULT = "inflight-10s-pool"
POLICY_CONFIGS = (OLD_DEFAULT, "inflight-10s", NEW_DEFAULT)  # the default comparison
PERIOD_CONFIGS = ("1s", "10s", "60s", "builtin5min")  # --periods: the publish-period comparison
TRACES = ("steady", "bursty", "spike", "diurnal", "trickle")  # new traces go last: seeds by index
WAIT_GOAL_TRACES = ("steady", "diurnal", "trickle")
WAIT_GOAL_P95 = 40.0


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
    target: float = 2.0  # BacklogPerInstance (visible per InService instance)
    # WorkPerInstance: (visible + in flight) per InService instance. With concurrency 2, 2 means
    # "every slot busy" and grows the group only after a job has waited; just under 2 grows it
    # once every slot has been busy, before anyone waits. Why 1.9: MODEL, "Targets";
    # --sweep-targets prints the trade-off.
    work_target: float = 2.0
    low_ratio: float = 0.9
    high_datapoints: int = 3
    low_datapoints: int = 15
    scale_in_cooldown: int = 300
    scale_in_step: int = 0
    scale_in_protection: bool = True
    builtin_interval: int = 300
    wake: bool = True
    wake_period: int = 10  # the wake-up alarm's period on the publisher's Visible and DesiredCapacity (infra/compute.tf: 10 s)
    capacity_basis: str = "current"  # "current": max(InService now, 1); "sampled": InService when sampled
    drain_cap: int = 3 * 3600
    # warm pool (policies with warm_pool=True only)
    warm_start: int = 21  # Warmed:Stopped -> InService, s (see MODEL for the sources)
    # MinSize 0 (AWS's default): the pool is what MaxGroupPreparedCapacity leaves, 5 - desired.
    # MinSize 1 keeps one stopped instance even above 5 in service; on these traces that bought
    # waits shorter by 1 s at most and cost up to 0.4 instance-hours per run (refills boot, billed).
    pool_min_size: int = 0  # MinSize
    # 5: at most 5 stopped instances (USD 20 a month of EBS at 50 GiB). Enough for most scale-outs
    # of the steady trace (59 of 65 start warm) and all of the trickle's; peaks beyond 5 in service
    # (diurnal's busy hour, bursts) launch cold.
    pool_max_prepared: int | None = 5  # MaxGroupPreparedCapacity; None: the group's max size (AWS's default)
    pool_return: int = 30  # InService -> Warmed:Stopped on scale-in (stopping), s
    reuse_on_scale_in: bool = True
    ebs_gb: int = 50  # infra/variables.tf worker_root_volume_gb
    ebs_usd_per_gb_month: float = 0.08  # gp3, us-east-1 (aws.amazon.com/ebs/pricing)
    # traces
    steady_rate: float = 0.05
    burst_rate: float = 0.3
    burst_on: int = 600
    burst_off: int = 1200
    spike_jobs: int = 200
    spike_at: int = 600
    diurnal_peak: float = 0.15
    trickle_gap_min: int = 60
    trickle_gap_max: int = 300


def effective_phase(p: Params) -> int:
    if p.phase is not None:
        return p.phase
    return random.Random(p.seed * 7919 + 17).randrange(p.builtin_interval)


def backlog_per_instance(visible: float, in_service: int) -> float:
    """BacklogPerInstance as the publisher computes it: an empty fleet counts as one instance."""
    return visible / max(in_service, 1)


def work_per_instance(visible: float, in_flight: float, in_service: int) -> float:
    """WorkPerInstance as the publisher computes it: jobs waiting plus jobs being run, per
    InService instance, an empty fleet counting as one."""
    return (visible + in_flight) / max(in_service, 1)


def pool_size(p: Params, desired: int, group_instances: int) -> int:
    """The warm pool's size as AWS documents it: MaxGroupPreparedCapacity (unset: the group's
    max size) minus the desired capacity, never below MinSize. The instances still in the group
    count against MaxGroupPreparedCapacity too ("in the warm pool or in any state except
    Terminated"), which matters while protected instances outlast a scale-in."""
    prepared = p.max_size if p.pool_max_prepared is None else p.pool_max_prepared
    return max(p.pool_min_size, prepared - max(desired, group_instances))


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
    elif name == "trickle":
        # one job, then a whole-second gap drawn uniformly from [min, max]; the first job comes
        # one gap after t=0, so the run starts from an empty group like the others
        times = []
        t = rng.randint(p.trickle_gap_min, p.trickle_gap_max)
        while t < h:
            times.append(t)
            t += rng.randint(p.trickle_gap_min, p.trickle_gap_max)
    else:
        raise ValueError(f"unknown trace {name!r}")
    return list(zip(times, _durations(rng, len(times), p)))


# ---------------------------------------------------------------------------------------------
# The simulation.


class Instance:
    __slots__ = ("launch", "ready", "jobs")

    def __init__(self, launch: int, ready: int):
        self.launch = launch  # entered the group (cold launch or warm start): billing and warm-up
        self.ready = ready  # InService from here
        self.jobs: list[tuple[int, int, int]] = []  # (finish time, arrival, duration) of the jobs it runs


class PoolInstance:
    __slots__ = ("ready", "initialising")

    def __init__(self, ready: int, initialising: bool):
        self.ready = ready  # Warmed:Stopped from here
        self.initialising = initialising  # launched into the pool: running (billed) until ready


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
    p99_wait: float | None
    max_wait: float | None
    instance_hours: float  # running: booting, InService, initialising in the warm pool
    pool_stopped_hours: float  # warm pool instances stopped (or stopping): EBS only
    interrupted: int  # jobs whose instance was removed by scale-in while running them
    peak_instances: int
    launches: int  # instances that entered the group (cold launches + warm starts)
    warm_starts: int  # of which from the warm pool
    pool_launches: int  # instances launched into the warm pool (they boot, then stop)
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
    pol = CONFIGS[config]
    publish_period, alarm_period, builtin = pol.publish, pol.alarm, pol.builtin
    work_metric = pol.metric == "work"
    if work_metric and builtin:
        raise ValueError("the built-in SQS metric has no in-flight-aware variant here")
    pooled = pol.warm_pool
    phase = effective_phase(p)
    conc = p.concurrency
    target = p.work_target if work_metric else p.target
    low_threshold = p.low_ratio * target

    # queue entries: (arrival, duration) as they arrive; (arrival, duration, 1) when put back
    # after an interruption (their wait was counted at their first start)
    queue: collections.deque[tuple] = collections.deque()
    live: list[Instance] = []
    desired = p.min_size
    pool: list[PoolInstance] = []
    if pooled:  # full and stopped at t=0: the stack has been up for a while
        pool = [PoolInstance(0, False) for _ in range(pool_size(p, desired, 0))]
    ai = 0
    n = len(trace)
    waits: list[int] = []
    inst_seconds = 0
    stopped_seconds = 0
    interrupted = 0
    peak = 0
    launches = 0
    warm_starts = 0
    pool_launches = 0
    next_finish = math.inf  # earliest finish time of a running job

    # alarm state
    history: collections.deque[float] = collections.deque(maxlen=max(p.high_datapoints, p.low_datapoints))
    bucket_sum = 0.0
    bucket_seen = 0  # sum of the numerators behind the datapoint (for capacity_basis="sampled")
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
        if ai >= n and t >= p.horizon and not queue and not live and not any(x.initialising for x in pool):
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
        in_flight = 0
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
                    inst.jobs = jobs = [j for j in jobs if j[0] > t]
                while queue and len(jobs) < conc:
                    job = queue.popleft()
                    a, d = job[0], job[1]
                    if len(job) == 2:
                        waits.append(t - a)
                    jobs.append((t + d, a, d))
                for j in jobs:
                    if j[0] < next_finish:
                        next_finish = j[0]
                in_flight += len(jobs)
        visible = len(queue)

        # 3. alarms evaluate the period that just ended, [w - A, w)
        if w % alarm_period == 0 and bucket_n:
            value = bucket_sum / bucket_n
            mean_seen = bucket_seen / bucket_n
            bucket_sum = 0.0
            bucket_seen = 0
            bucket_n = 0
            history.append(value)
            hd = p.high_datapoints
            ld = p.low_datapoints
            # new capacity = ceil(capacity * metric / target); "sampled" uses the capacity the metric
            # was computed with, i.e. ceil(numerator / target)
            need = mean_seen if sampled_basis else max(in_service, 1) * value
            if len(history) >= hd and all(history[-i] > target for i in range(1, hd + 1)):
                computed = min(p.max_size, max(p.min_size, math.ceil(need / target - 1e-9)))
                if computed > desired:
                    if log is not None:
                        log.append((t, "scale-out", f"in_service={in_service} live={len(live)} visible={visible} "
                                    f"in_flight={in_flight} metric={value:.2f} desired {desired}->{computed}"))
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
                                        f"in_flight={in_flight} metric={value:.2f} desired {desired}->{computed}"))
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
            seen_visible = stale_visible if builtin else visible
            seen = seen_visible + in_flight if work_metric else seen_visible
            bucket_sum += seen / max(in_service, 1)  # backlog_per_instance / work_per_instance, inlined
            bucket_seen += seen
            bucket_n += 1
            if seen_visible > wake_max:  # the wake-up alarm reads Visible, whatever the policy tracks
                wake_max = seen_visible

        # 5. the group converges on the desired capacity
        count = len(live)
        if count < desired:
            for _ in range(desired - count):
                drawn = None
                if pooled:
                    for k, x in enumerate(pool):  # a Warmed:Stopped instance, oldest first
                        if not x.initialising and x.ready <= t:
                            drawn = pool.pop(k)
                            break
                if drawn is not None:
                    live.append(Instance(t, t + p.warm_start))
                    warm_starts += 1
                else:
                    live.append(Instance(t, t + p.boot))
            launches += desired - count
        elif count > desired:
            excess = count - desired
            # unprotected = holding no job (or protection off); oldest first (OldestLaunchTemplate,
            # OldestInstance)
            keep = []
            for inst in live:  # live is in launch order
                if excess and (not inst.jobs or not p.scale_in_protection):
                    excess -= 1
                    if inst.jobs:  # only reachable without protection: count it, put the jobs back
                        interrupted += len(inst.jobs)
                        if log is not None:
                            log.append((t, "interrupted", f"{len(inst.jobs)} jobs"))
                        for _, a, d in sorted(inst.jobs, reverse=True):
                            queue.appendleft((a, d, 1))
                    if pooled and p.reuse_on_scale_in:
                        pool.append(PoolInstance(t + p.pool_return, False))
                else:
                    keep.append(inst)
            live = keep
        if pooled:
            size = pool_size(p, desired, len(live))
            if len(pool) < size:
                pool_launches += size - len(pool)
                for _ in range(size - len(pool)):
                    pool.append(PoolInstance(t + p.boot, True))
            elif len(pool) > size:
                del pool[size:]  # the newest go
            initialising = 0
            for x in pool:
                if x.initialising:
                    if x.ready <= t:
                        x.initialising = False
                    else:
                        initialising += 1
            inst_seconds += initialising
            stopped_seconds += len(pool) - initialising
        inst_seconds += len(live)
        if len(live) > peak:
            peak = len(live)
        t += 1

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
        p99_wait=percentile(waits, 99),
        max_wait=float(max(waits)) if waits else None,
        instance_hours=inst_seconds / 3600,
        pool_stopped_hours=stopped_seconds / 3600,
        interrupted=interrupted,
        peak_instances=peak,
        launches=launches,
        warm_starts=warm_starts,
        pool_launches=pool_launches,
        end_time=t,
        scaleout_decisions=decisions,
    )


def run_all(p: Params, traces=TRACES, configs=POLICY_CONFIGS) -> list[Result]:
    out = []
    for name in traces:
        trace = make_trace(name, p)
        for c in configs:
            out.append(simulate(trace, c, p, name))
    return out


# ---------------------------------------------------------------------------------------------
# Output.

FIGURES = (  # key, unit, digits
    ("first_scaleout", "s", 0),
    ("p95_wait", "s", 0),
    ("p99_wait", "s", 0),
    ("instance_hours", "h", 2),
    ("pool_stopped_hours", "h", 2),
    ("interrupted", "jobs", 0),
)


def _fmt(v, digits=0) -> str:
    if v is None:
        return "n/a"
    if digits == 0:
        return str(int(round(v)))
    return f"{v:.{digits}f}"


def _label(config: str) -> str:
    return CONFIGS[config].label or config


def ebs_usd_per_month(p: Params, instances: float) -> float:
    """What `instances` stopped warm-pool instances cost a month: their gp3 root volumes."""
    return instances * p.ebs_gb * p.ebs_usd_per_gb_month


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


def wait_goal(results: list[Result], new=NEW_DEFAULT, old=OLD_DEFAULT) -> dict[str, dict]:
    """Per goal trace: does `new` keep the p95 queue wait <= 40 s at no more instance-hours than
    `old`, without interrupting a job?"""
    by = {(r.trace, r.config): r for r in results}
    out = {}
    for trace in WAIT_GOAL_TRACES:
        a, b = by.get((trace, new)), by.get((trace, old))
        if not a or not b:
            continue
        out[trace] = _goal(a.p95_wait, a.instance_hours, b.instance_hours, a.interrupted)
    return out


def _goal(p95, hours, old_hours, interrupted) -> dict:
    fast = p95 is not None and p95 <= WAIT_GOAL_P95
    cheap = hours <= old_hours + 1e-9
    return {"p95_wait": p95, "instance_hours": hours, "old_instance_hours": old_hours,
            "p95_within_goal": fast, "no_more_instance_hours": cheap, "pass": fast and cheap and not interrupted}


TABLE_HEAD = [
    "| trace | policy | first scale-out (s) | p95 wait (s) | p99 wait (s) | instance-hours | pool stopped-hours | interrupted by scale-in |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
]


def markdown_table(results: list[Result]) -> str:
    lines = list(TABLE_HEAD)
    for r in results:
        p95 = _fmt(r.p95_wait)
        if r.processed < r.jobs:
            p95 += f" ({r.jobs - r.processed} stranded)"
        pool = f"{r.pool_stopped_hours:.2f}" if CONFIGS[r.config].warm_pool else "–"
        lines.append(f"| {r.trace} | {_label(r.config)} | {_fmt(r.first_scaleout)} | {p95} | {_fmt(r.p99_wait)} | "
                     f"{r.instance_hours:.2f} | {pool} | {r.interrupted} |")
    return "\n".join(lines)


def figure_lines(results: list[Result], acc: dict[str, dict], goal: dict[str, dict], p: Params) -> list[str]:
    out = []
    for r in results:
        k = f"sim_{r.trace}_{r.config}"
        out.append(f"{k}_first_scaleout: {_fmt(r.first_scaleout)} s")
        out.append(f"{k}_p95_wait: {_fmt(r.p95_wait)} s")
        out.append(f"{k}_p99_wait: {_fmt(r.p99_wait)} s")
        out.append(f"{k}_instance_hours: {r.instance_hours:.2f} h")
        if CONFIGS[r.config].warm_pool:
            out.append(f"{k}_pool_stopped_hours: {r.pool_stopped_hours:.2f} h")
            stopped = r.pool_stopped_hours / max(r.end_time / 3600, 1e-9)  # mean stopped instances
            out.append(f"{k}_pool_ebs: USD {ebs_usd_per_month(p, stopped):.2f} per month "
                       f"(on average {stopped:.1f} stopped instances)")
        out.append(f"{k}_interrupted_by_scale_in: {r.interrupted} jobs")
        if r.processed < r.jobs:
            out.append(f"{k}_stranded_jobs: {r.jobs - r.processed} jobs")
    for trace, a in acc.items():
        out.append(f"sim_{trace}_first_scaleout_speedup_10s_vs_builtin5min: {_fmt(a['speedup'], 1)} x")
        out.append(f"sim_{trace}_instance_hours_10s_minus_builtin5min: {a['instance_hours_delta']:+.2f} h")
        out.append(f"sim_{trace}_acceptance: {'pass' if a['pass'] else 'fail'}")
    out.extend(goal_lines(goal))
    return out


def goal_lines(goal: dict[str, dict], prefix="sim") -> list[str]:
    return [f"{prefix}_{trace}_wait_goal_{NEW_DEFAULT}: {'pass' if g['pass'] else 'fail'} "
            f"(p95 {_fmt(g['p95_wait'])} s <= {WAIT_GOAL_P95:g}: {'yes' if g['p95_within_goal'] else 'no'}; "
            f"{g['instance_hours']:.2f} h vs {g['old_instance_hours']:.2f} h today)"
            for trace, g in goal.items()]


def sweep_phases(p: Params, n: int) -> list[int]:
    golden = (math.sqrt(5) - 1) / 2  # a Weyl sequence covers both the 5-minute and the 10 s position
    return [int(p.builtin_interval * ((0.5 + i * golden) % 1.0)) for i in range(n)]


def phase_sweep(p: Params, n: int, traces=TRACES, configs=POLICY_CONFIGS) -> list[dict]:
    """The same runs at n wall-clock phases spread over the 5-minute cycle: where a trace's first
    job falls relative to the publish, alarm and 5-minute boundaries decides much of the time to
    first scale-out. Returns per (trace, config) the mean, min and max of each figure (n = 0: one
    run at the seed's phase)."""
    phases = sweep_phases(p, n) if n > 0 else [p.phase]
    return summarise([run_all(replace(p, phase=ph), traces, configs) for ph in phases])


def summarise(runs: list[list[Result]]) -> list[dict]:
    """Per (trace, config): mean, min and max of each figure over runs of the same shape."""
    out = []
    for j, r0 in enumerate(runs[0]):
        rs = [run[j] for run in runs]
        row = {"trace": r0.trace, "config": r0.config}
        for key, _, _ in FIGURES:
            vals = [getattr(r, key) for r in rs if getattr(r, key) is not None]
            row[key] = {"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals)} if vals else None
        row["stranded"] = max(r.jobs - r.processed for r in rs)
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


def sweep_wait_goal(rows: list[dict], new=NEW_DEFAULT, old=OLD_DEFAULT) -> dict[str, dict]:
    """wait_goal on the means over the phases (the p95 of every single phase is in the table's
    min-max)."""
    by = {(r["trace"], r["config"]): r for r in rows}
    out = {}
    for trace in WAIT_GOAL_TRACES:
        a, b = by.get((trace, new)), by.get((trace, old))
        if not a or not b or not a["p95_wait"]:
            continue
        out[trace] = _goal(a["p95_wait"]["mean"], a["instance_hours"]["mean"], b["instance_hours"]["mean"],
                           a["interrupted"]["max"])
    return out


def target_sweep(p: Params, targets: list[float], n: int, traces=TRACES) -> list[dict]:
    """The new default at each WorkPerInstance target, and today's default, on `traces` (mean over
    n phases, or the seed's phase): what the target trades between waits and instance-hours."""
    rows = [{"config": OLD_DEFAULT, "target": p.target, "rows": phase_sweep(p, n, traces, (OLD_DEFAULT,))}]
    for x in targets:
        rows.append({"config": NEW_DEFAULT, "target": x,
                     "rows": phase_sweep(replace(p, work_target=x), n, traces, (NEW_DEFAULT,))})
    return rows


def target_table(sweep: list[dict], traces=TRACES) -> str:
    lines = ["| policy | target | " + " | ".join(f"{t}: p95 wait (s) / instance-hours" for t in traces) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in traces) + " |"]
    for entry in sweep:
        by = {r["trace"]: r for r in entry["rows"]}
        cells = [f"{_fmt(by[t]['p95_wait']['mean'])} / {by[t]['instance_hours']['mean']:.2f}" for t in traces]
        lines.append(f"| {_label(entry['config'])} | {entry['target']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_table(rows: list[dict]) -> str:
    def f(c, digits=0):
        if c is None:
            return "n/a"
        return f"{_fmt(c['mean'], digits)} ({_fmt(c['min'], digits)}–{_fmt(c['max'], digits)})"

    lines = list(TABLE_HEAD)
    for r in rows:
        p95 = f(r["p95_wait"])
        if r["stranded"]:
            p95 += f" (up to {r['stranded']} stranded)"
        pool = f(r["pool_stopped_hours"], 2) if CONFIGS[r["config"]].warm_pool else "–"
        lines.append(f"| {r['trace']} | {_label(r['config'])} | {f(r['first_scaleout'])} | {p95} | {f(r['p99_wait'])} | "
                     f"{f(r['instance_hours'], 2)} | {pool} | {_fmt(r['interrupted']['max'])} |")
    return "\n".join(lines)


def settings_line(p: Params) -> str:
    prepared = "max size" if p.pool_max_prepared is None else p.pool_max_prepared
    return (f"Horizon {p.horizon} s, seed {p.seed}, max {p.max_size} instances x {p.concurrency} jobs, "
            f"jobs ~{p.job_mean:g} s, boot {p.boot} s, warm-up {p.warmup} s, BacklogPerInstance target {p.target:g}, "
            f"WorkPerInstance target {p.work_target:g}, wake-up alarm {f'{p.wake_period} s' if p.wake else 'off'}, "
            f"capacity basis {p.capacity_basis}, scale-in protection {'on' if p.scale_in_protection else 'off'}; "
            f"warm pool: min size {p.pool_min_size}, max prepared capacity {prepared}, warm start {p.warm_start} s, "
            f"back in the pool {p.pool_return} s after scale-in; EBS {p.ebs_gb} GiB gp3 at "
            f"USD {p.ebs_usd_per_gb_month:g}/GB-month = USD {ebs_usd_per_month(p, 1):.2f} per stopped instance-month.")


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
    ap.add_argument("--sweep-targets", default=None, metavar="T,T,...",
                    help=f"instead: {NEW_DEFAULT} at each WorkPerInstance target, next to {OLD_DEFAULT} "
                         "(means over --phase-sweep N phases if given)")
    ap.add_argument("--traces", default=",".join(TRACES), help="comma-separated subset of " + ",".join(TRACES))
    ap.add_argument("--configs", default=None,
                    help=f"comma-separated subset of {','.join(CONFIGS)} (default {','.join(POLICY_CONFIGS)})")
    ap.add_argument("--periods", action="store_true",
                    help=f"the publish-period comparison: --configs {','.join(PERIOD_CONFIGS)} "
                         "(with --traces steady,bursty,spike,diurnal: the figures from before the in-flight metric)")
    ap.add_argument("--max-size", type=int, default=d.max_size)
    ap.add_argument("--concurrency", type=int, default=d.concurrency, help="jobs per worker")
    ap.add_argument("--job-seconds", type=float, default=d.job_mean, help="mean job duration (lognormal)")
    ap.add_argument("--boot", type=int, default=d.boot, help="cold launch to InService, s")
    ap.add_argument("--warmup", type=int, default=d.warmup, help="instance warm-up, s from launch")
    ap.add_argument("--target", type=float, default=d.target, help="BacklogPerInstance target")
    ap.add_argument("--work-target", type=float, default=d.work_target, help="WorkPerInstance target (in-flight-aware)")
    ap.add_argument("--scale-in-cooldown", type=int, default=d.scale_in_cooldown)
    ap.add_argument("--scale-in-step", type=int, default=d.scale_in_step, help="max instances removed per scale-in (0: no limit)")
    ap.add_argument("--no-protection", action="store_true",
                    help="workers do not protect their instance while busy (scale-in may interrupt jobs)")
    ap.add_argument("--no-wake", action="store_true", help="without the wake-up alarm (pure target tracking)")
    ap.add_argument("--wake-period", type=int, default=d.wake_period,
                    help="wake-up alarm period for the publisher's metrics (10 = high-resolution alarm); 60 for builtin5min")
    ap.add_argument("--capacity-basis", choices=("current", "sampled"), default=d.capacity_basis,
                    help="capacity target tracking multiplies the metric by: InService now (default) or when sampled")
    ap.add_argument("--warm-start", type=int, default=d.warm_start, help="warm pool (Stopped) to InService, s")
    ap.add_argument("--pool-min-size", type=int, default=d.pool_min_size, help="warm pool MinSize")
    ap.add_argument("--pool-max-prepared", type=int, default=d.pool_max_prepared,
                    help="warm pool MaxGroupPreparedCapacity; -1: unset (the group's max size)")
    ap.add_argument("--pool-return", type=int, default=d.pool_return, help="scale-in to Warmed:Stopped, s")
    ap.add_argument("--ebs-gb", type=int, default=d.ebs_gb, help="a worker's root volume, GiB (for the pool's EBS cost)")
    a = ap.parse_args(argv)
    p = replace(d, horizon=a.horizon, seed=a.seed, phase=a.phase, max_size=a.max_size, concurrency=a.concurrency,
                job_mean=a.job_seconds, boot=a.boot, warmup=a.warmup, target=a.target, work_target=a.work_target,
                scale_in_cooldown=a.scale_in_cooldown, scale_in_step=a.scale_in_step,
                scale_in_protection=not a.no_protection, wake=not a.no_wake, wake_period=a.wake_period,
                capacity_basis=a.capacity_basis, warm_start=a.warm_start, pool_min_size=a.pool_min_size,
                pool_max_prepared=None if a.pool_max_prepared is not None and a.pool_max_prepared < 0 else a.pool_max_prepared,
                pool_return=a.pool_return, ebs_gb=a.ebs_gb)
    if a.configs is None:
        a.configs = ",".join(PERIOD_CONFIGS if a.periods else POLICY_CONFIGS)
    elif a.periods:
        ap.error("--periods and --configs exclude each other")
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
    if a.sweep_targets:
        sweep = target_sweep(p, [float(x) for x in a.sweep_targets.split(",")], a.phase_sweep, traces)
        if a.json:
            print(json.dumps({"params": asdict(p), "phases": a.phase_sweep, "sweep": sweep}, indent=2))
            return 0
        if not a.markdown_only:
            print(settings_line(p))
            print()
            print(f"Mean over {a.phase_sweep} phases of the 5-minute cycle." if a.phase_sweep else
                  f"Phase {effective_phase(p)} s.")
            print()
        print(target_table(sweep, traces))
        return 0
    if a.phase_sweep > 0:
        started = time.perf_counter()
        rows = phase_sweep(p, a.phase_sweep, traces, configs)
        elapsed = time.perf_counter() - started
        acc = sweep_acceptance(rows)
        goal = sweep_wait_goal(rows)
        if a.json:
            print(json.dumps({"params": asdict(p), "phases": a.phase_sweep, "rows": rows, "acceptance": acc,
                              "wait_goal": goal, "elapsed_seconds": round(elapsed, 3)}, indent=2))
            return 0
        if not a.markdown_only:
            for r in rows:
                k = f"sim_sweep_{r['trace']}_{r['config']}"
                for key, unit, d in FIGURES:
                    if key == "pool_stopped_hours" and not CONFIGS[r["config"]].warm_pool:
                        continue
                    print(f"{k}_{key}_mean: {_fmt(r[key]['mean'] if r[key] else None, d)} {unit}")
            for trace, x in acc.items():
                print(f"sim_sweep_{trace}_first_scaleout_speedup_10s_vs_builtin5min: {_fmt(x['speedup'], 1)} x")
                print(f"sim_sweep_{trace}_acceptance: {'pass' if x['pass'] else 'fail'}")
            print("\n".join(goal_lines(goal, "sim_sweep")))
            print(f"sim_runtime: {elapsed:.1f} s")
            print()
            print(settings_line(p))
            print()
            print(f"Mean (min–max) over {a.phase_sweep} phases of the 5-minute cycle; interrupted: the most in any phase.")
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
    goal = wait_goal(results)
    if a.json:
        print(json.dumps({
            "params": {**asdict(p), "phase": effective_phase(p)},
            "results": [{k: v for k, v in asdict(r).items() if k != "scaleout_decisions"} for r in results],
            "acceptance": acc,
            "wait_goal": goal,
            "elapsed_seconds": round(elapsed, 3),
        }, indent=2))
        return 0
    if not a.markdown_only:
        print("\n".join(figure_lines(results, acc, goal, p)))
        print(f"sim_runtime: {elapsed:.1f} s")
        print()
        print(f"Phase {effective_phase(p)} s. " + settings_line(p))
        print()
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
