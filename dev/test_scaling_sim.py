"""Invariants of dev/scaling_sim.py, and the wait goal its new defaults were chosen for.

    python3 -m unittest discover -s dev -p 'test_scaling_sim.py'   (dev/test-infra.sh runs this)
    python3 dev/test_scaling_sim.py

A few seconds: most runs are one hour long; the wait-goal tests use the README's 4-hour traces.
"""
import contextlib
import io
import json
import os
import sys
import unittest
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scaling_sim as sim  # noqa: E402

# Short runs keep the suite fast; one hour still holds two bursts, the spike and a diurnal cycle.
P = sim.Params(horizon=3600, seed=1)


def run(trace, config, **kw):
    p = replace(P, **kw)
    return sim.simulate(sim.make_trace(trace, p), config, p, trace)


class Traces(unittest.TestCase):
    def test_deterministic(self):
        for name in sim.TRACES:
            self.assertEqual(sim.make_trace(name, P), sim.make_trace(name, P))
        self.assertNotEqual(sim.make_trace("steady", P), sim.make_trace("steady", replace(P, seed=2)))

    def test_shapes(self):
        spike = sim.make_trace("spike", P)
        self.assertEqual(len(spike), P.spike_jobs)
        self.assertTrue(all(t == P.spike_at for t, _ in spike))
        steady = sim.make_trace("steady", P)
        self.assertLess(abs(len(steady) - P.steady_rate * P.horizon), 5 * (P.steady_rate * P.horizon) ** 0.5)
        cycle = P.burst_on + P.burst_off
        self.assertTrue(all(t % cycle < P.burst_on for t, _ in sim.make_trace("bursty", P)))
        for name in sim.TRACES:
            tr = sim.make_trace(name, P)
            times = [t for t, _ in tr]
            self.assertEqual(times, sorted(times))
            self.assertTrue(all(0 <= t < P.horizon and d >= 1 for t, d in tr))

    def test_trickle_gaps(self):
        # one job every 1-5 minutes, over the whole horizon
        for p in (P, sim.Params()):
            times = [t for t, _ in sim.make_trace("trickle", p)]
            gaps = [b - a for a, b in zip(times, times[1:])]
            self.assertTrue(all(p.trickle_gap_min <= g <= p.trickle_gap_max for g in gaps), (min(gaps), max(gaps)))
            self.assertTrue(p.trickle_gap_min <= times[0] <= p.trickle_gap_max)
            self.assertGreater(times[-1], p.horizon - p.trickle_gap_max)
            self.assertTrue(all(isinstance(g, int) for g in gaps))
            self.assertGreater(max(gaps) - min(gaps), 180, "drawn across the range, not fixed")
        self.assertNotEqual(sim.make_trace("trickle", P), sim.make_trace("trickle", replace(P, seed=2)))

    def test_adding_trickle_left_the_other_traces_alone(self):
        # seeds are by position in TRACES: the four older traces (and so the README's older
        # figures) are unchanged
        self.assertEqual(sim.TRACES[:4], ("steady", "bursty", "spike", "diurnal"))

    def test_percentile(self):
        self.assertIsNone(sim.percentile([], 95))
        self.assertEqual(sim.percentile([5], 95), 5)
        self.assertEqual(sim.percentile(list(range(1, 101)), 95), 95)
        self.assertEqual(sim.percentile(list(range(1, 101)), 50), 50)


class Invariants(unittest.TestCase):
    def test_all_jobs_processed_and_instances_billed(self):
        for name in sim.TRACES:
            for config in sim.CONFIGS:
                with self.subTest(trace=name, config=config):
                    r = run(name, config)
                    self.assertGreater(r.jobs, 0)
                    self.assertEqual(r.processed, r.jobs, "every job eventually runs")
                    self.assertGreater(r.instance_hours, 0)
                    self.assertLessEqual(r.peak_instances, P.max_size)
                    self.assertGreaterEqual(r.p95_wait, 0)
                    self.assertLess(r.end_time, P.horizon + P.drain_cap, "the group returns to zero")

    def test_no_jobs_no_instances(self):
        p = replace(P, spike_jobs=0)
        r = sim.simulate(sim.make_trace("spike", p), "10s", p, "spike")
        self.assertEqual(r.instance_hours, 0)
        self.assertIsNone(r.first_scaleout)

    def test_scale_out_from_zero(self):
        for config in sim.CONFIGS:
            for wake in (True, False):
                with self.subTest(config=config, wake=wake):
                    r = run("spike", config, wake=wake)
                    self.assertIsNotNone(r.first_scaleout)
                    self.assertGreater(r.launches, 0)
                    self.assertEqual(r.processed, r.jobs)

    def test_target_tracking_alone_strands_a_few_jobs(self):
        # metric = visible / 1 = target is not above target: why the stack has a wake-up alarm
        for wake, expected in ((False, 0), (True, 2)):
            p = replace(P, spike_jobs=2, wake=wake)
            r = sim.simulate(sim.make_trace("spike", p), "10s", replace(p, drain_cap=3600), "spike")
            self.assertEqual(r.processed, expected)

    def test_aggressive_scale_in_still_runs_every_job(self):
        # only idle instances are terminated, so no warm-up, no cooldown and a 1 s boot lose nothing,
        # and the billed instance time covers the work
        p = replace(P, scale_in_cooldown=0, warmup=0, boot=1)
        tr = sim.make_trace("bursty", p)
        r = sim.simulate(tr, "1s", p, "bursty")
        self.assertEqual(r.processed, r.jobs)
        self.assertGreaterEqual(r.instance_hours * 3600 * p.concurrency, sum(d for _, d in tr))


class Metrics(unittest.TestCase):
    def test_work_per_instance(self):
        self.assertEqual(sim.work_per_instance(4, 3, 2), 3.5)
        self.assertEqual(sim.work_per_instance(0, 3, 0), 3, "an empty fleet counts as one instance")
        self.assertEqual(sim.work_per_instance(0, 0, 0), 0)
        self.assertEqual(sim.backlog_per_instance(4, 2), 2, "visible only")
        self.assertEqual(sim.backlog_per_instance(3, 0), 3)

    def test_in_flight_jobs_count_toward_the_metric(self):
        # the first job wakes the group; the next two find it busy. One visible job on one
        # instance is under the visible-only target (1 < 2), so that policy never adds a second
        # instance; WorkPerInstance reads 2 in flight + 1 waiting = 3 > 2, and does
        p = replace(P, horizon=1500)
        trace = [(100, 1200), (400, 1200), (500, 1200)]
        self.assertEqual(sim.simulate(trace, "10s", p).launches, 1)
        self.assertGreaterEqual(sim.simulate(trace, "inflight-10s", p).launches, 2)
        # at the default target of 2 ("every slot busy") two jobs on one instance are on target;
        # just under it (1.9) they are above it
        self.assertEqual(sim.simulate(trace[:2], "inflight-10s", p).launches, 1)
        self.assertGreaterEqual(sim.simulate(trace[:2], "inflight-10s", replace(p, work_target=1.9)).launches, 2)


class WarmPool(unittest.TestCase):
    def test_warm_start_is_faster_than_a_cold_boot(self):
        p = replace(P, horizon=1200)
        self.assertLess(p.warm_start, p.boot)
        trace = [(300, 30)]
        cold = sim.simulate(trace, "inflight-10s", p)
        warm = sim.simulate(trace, "inflight-10s-pool", p)
        self.assertEqual((cold.warm_starts, warm.warm_starts), (0, 1))
        self.assertEqual(warm.scaleout_decisions, cold.scaleout_decisions, "same decision, different start")
        self.assertEqual(cold.max_wait - warm.max_wait, p.boot - p.warm_start)

    def test_pool_size_as_aws_documents_it(self):
        p = replace(P, max_size=10, pool_min_size=0, pool_max_prepared=None)
        self.assertEqual(sim.pool_size(p, 6, 6), 4, "max size - desired")
        p = replace(p, pool_max_prepared=8)
        self.assertEqual(sim.pool_size(p, 6, 6), 2, "MaxGroupPreparedCapacity - desired")
        self.assertEqual(sim.pool_size(p, 9, 9), 0, "desired above it: empty")
        self.assertEqual(sim.pool_size(replace(p, pool_min_size=1), 9, 9), 1, "unless MinSize")
        self.assertEqual(sim.pool_size(p, 5, 7), 1, "instances still in the group count against it")

    def test_stopped_instances_are_not_instance_hours(self):
        # no jobs: the pool sits stopped for the whole hour, nothing runs
        p = replace(P, spike_jobs=0)
        r = sim.simulate(sim.make_trace("spike", p), "inflight-10s-pool", p, "spike")
        self.assertEqual(r.instance_hours, 0)
        self.assertAlmostEqual(r.pool_stopped_hours, p.pool_max_prepared * p.horizon / 3600)
        self.assertEqual(r.pool_launches, 0)

    def test_reuse_on_scale_in_saves_the_refills(self):
        # with reuse, scaled-in instances go back to the pool: nothing is launched into it. Without,
        # each is terminated and the pool launches a replacement, billed while it boots
        reuse = run("trickle", "inflight-10s-pool")
        self.assertEqual(reuse.pool_launches, 0)
        self.assertEqual(reuse.warm_starts, reuse.launches)
        fresh = run("trickle", "inflight-10s-pool", reuse_on_scale_in=False)
        self.assertGreater(fresh.pool_launches, 0)
        self.assertAlmostEqual(fresh.instance_hours - reuse.instance_hours, fresh.pool_launches * P.boot / 3600)

    def test_an_empty_pool_launches_cold(self):
        # the spike needs more than MaxGroupPreparedCapacity instances: the rest boot cold
        r = run("spike", "inflight-10s-pool")
        self.assertEqual(r.warm_starts, P.pool_max_prepared)
        self.assertGreater(r.launches, r.warm_starts)


class ScaleIn(unittest.TestCase):
    def test_scale_in_never_interrupts_a_job(self):
        # counted from the simulation's state: an instance removed while it holds jobs
        for name in sim.TRACES:
            for config in sim.CONFIGS:
                with self.subTest(trace=name, config=config):
                    self.assertEqual(run(name, config).interrupted, 0)
        p = sim.Params()  # and the README's 4-hour traces under the policies compared there
        for name in sim.TRACES:
            trace = sim.make_trace(name, p)
            for config in sim.POLICY_CONFIGS:
                with self.subTest(trace=name, config=config, horizon=p.horizon):
                    self.assertEqual(sim.simulate(trace, config, p, name).interrupted, 0)

    def test_the_count_is_real_without_protection(self):
        # the same runs with workers that do not protect themselves do interrupt jobs, which go
        # back to the queue and still run
        hit = 0
        for name in ("steady", "bursty", "diurnal"):
            for config in sim.POLICY_CONFIGS:
                r = run(name, config, scale_in_protection=False)
                hit += r.interrupted
                self.assertEqual(r.processed, r.jobs)
        self.assertGreater(hit, 0)


class WaitGoal(unittest.TestCase):
    """The issue's goal for the new default: p95 queue wait <= 40 s on steady, diurnal and trickle,
    at no more instance-hours than today's default. Met on steady and diurnal; on trickle the
    wait is met at the default warm start and the cost is within a few per cent (pool refills)."""

    P = sim.Params()  # the README's horizon: 4 hours, seed 1

    def test_steady_and_diurnal_over_the_readme_phases(self):
        rows = sim.phase_sweep(self.P, 20, ("steady", "diurnal"), (sim.OLD_DEFAULT, sim.NEW_DEFAULT))
        goal = sim.sweep_wait_goal(rows)
        by = {(r["trace"], r["config"]): r for r in rows}
        for trace in ("steady", "diurnal"):
            with self.subTest(trace=trace):
                self.assertTrue(goal[trace]["pass"], goal[trace])
                new = by[(trace, sim.NEW_DEFAULT)]
                self.assertLessEqual(new["p95_wait"]["max"], sim.WAIT_GOAL_P95, "in every phase, not only on average")
                self.assertLessEqual(new["instance_hours"]["mean"], by[(trace, sim.OLD_DEFAULT)]["instance_hours"]["mean"])

    def test_steady_and_diurnal_in_the_default_run(self):
        goal = sim.wait_goal(sim.run_all(self.P, ("steady", "diurnal", "trickle")))
        self.assertTrue(goal["steady"]["pass"], goal["steady"])
        self.assertTrue(goal["diurnal"]["pass"], goal["diurnal"])

    def test_trickle_meets_it_at_the_default_warm_start_not_at_36_s(self):
        # a trickle job mostly finds the group empty: it waits for the wake-up alarm (10-20 s)
        # plus a warm start. At the default 21 s that is within 40 s; at the 36 s AWS's workshop
        # measured through Auto Scaling it is not (still half of today's 109 s)
        p = self.P
        trace = sim.make_trace("trickle", p)
        old = sim.simulate(trace, sim.OLD_DEFAULT, p, "trickle")
        new = sim.simulate(trace, sim.NEW_DEFAULT, p, "trickle")
        self.assertLessEqual(new.p95_wait, sim.WAIT_GOAL_P95)
        slow = sim.simulate(trace, sim.NEW_DEFAULT, replace(p, warm_start=36), "trickle")
        self.assertGreater(slow.p95_wait, sim.WAIT_GOAL_P95)
        self.assertLess(slow.p95_wait, old.p95_wait / 1.9)
        # it costs about what today costs: the pool's refills boot billed, within 5 %
        self.assertLess(new.instance_hours, old.instance_hours * 1.05)


class Reaction(unittest.TestCase):
    PHASES = (0, 1, 37, 150, 299)

    def test_10s_reacts_faster_than_builtin_on_the_spike(self):
        for phase in self.PHASES:
            with self.subTest(phase=phase):
                fast = run("spike", "10s", phase=phase)
                slow = run("spike", "builtin5min", phase=phase)
                self.assertLess(fast.first_scaleout, slow.first_scaleout)
                self.assertLess(fast.p95_wait, slow.p95_wait)
                self.assertLessEqual(fast.instance_hours, slow.instance_hours)

    def test_builtin_includes_the_five_minute_staleness(self):
        # the spike lands 1 s after a 5-minute boundary: the built-in metric shows it 299 s later
        phase = (1 - P.spike_at) % 300
        slow = run("spike", "builtin5min", phase=phase)
        self.assertGreaterEqual(slow.first_scaleout, 299)
        fast = run("spike", "10s", phase=phase)
        self.assertLessEqual(fast.first_scaleout, 60)
        # without the wake-up alarm target tracking needs 3 one-minute datapoints on top
        slow_tt = run("spike", "builtin5min", phase=phase, wake=False)
        self.assertGreaterEqual(slow_tt.first_scaleout, 299 + 120)

    def test_high_alarm_needs_three_periods(self):
        # the spike at a 10 s boundary: datapoints at +10, +20, +30 s -> scale-out at +30 s
        phase = (-P.spike_at) % 300
        r = run("spike", "10s", phase=phase, wake=False)
        self.assertEqual(r.first_scaleout, 30)
        r = run("spike", "60s", phase=phase, wake=False)
        self.assertEqual(r.first_scaleout, 180)

    def test_slow_scale_in_costs_instance_hours(self):
        # low alarm: 15 periods; 60 s periods keep an idle fleet ~15 minutes, 10 s ones ~2.5
        self.assertLess(run("spike", "10s").instance_hours, run("spike", "60s").instance_hours)


class Cli(unittest.TestCase):
    def capture(self, *argv):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(sim.main(list(argv)), 0)
        return out.getvalue()

    def test_lines_and_table(self):
        text = self.capture("--horizon", "1800")
        lines = text.splitlines()
        self.assertIn("sim_spike_10s_first_scaleout:", text)
        figures = [ln for ln in lines if ln.startswith("sim_")]
        for ln in figures:
            name, _, rest = ln.partition(": ")
            self.assertTrue(rest, ln)
        table = [ln for ln in lines if ln.startswith("|")]
        self.assertEqual(len(table), 2 + len(sim.TRACES) * len(sim.POLICY_CONFIGS))
        self.assertIn("sim_trickle_inflight-10s-pool_pool_stopped_hours:", text)
        self.assertIn("sim_steady_wait_goal_inflight-10s-pool:", text)

    def test_periods_table(self):
        # the publish-period comparison stays available: same rows as before the in-flight metric
        text = self.capture("--horizon", "1800", "--periods", "--markdown-only", "--traces", "steady,bursty,spike,diurnal")
        rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
        self.assertEqual([ln.split(" | ")[0][2:] for ln in rows], [t for t in sim.TRACES[:4] for _ in sim.PERIOD_CONFIGS])
        self.assertIn("SQS 5-min", text)

    def test_markdown_only(self):
        text = self.capture("--horizon", "1800", "--markdown-only")
        self.assertTrue(all(ln.startswith("|") for ln in text.strip().splitlines()))

    def test_json(self):
        data = json.loads(self.capture("--horizon", "1800", "--json", "--traces", "spike"))
        self.assertEqual(len(data["results"]), len(sim.POLICY_CONFIGS))
        self.assertEqual(data["acceptance"], {}, "no builtin5min in the default comparison")
        data = json.loads(self.capture("--horizon", "1800", "--json", "--traces", "spike", "--periods"))
        self.assertEqual(len(data["results"]), len(sim.PERIOD_CONFIGS))
        self.assertIn("spike", data["acceptance"])

    def test_phase_sweep(self):
        text = self.capture("--horizon", "1800", "--traces", "spike", "--phase-sweep", "3", "--markdown-only")
        self.assertEqual(len(text.strip().splitlines()), 2 + len(sim.POLICY_CONFIGS))

    def test_sweep_targets(self):
        text = self.capture("--horizon", "1800", "--traces", "trickle", "--sweep-targets", "1.5,2", "--markdown-only")
        self.assertEqual(len(text.strip().splitlines()), 2 + 1 + 2)

    def test_periods_and_configs_exclude_each_other(self):
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            sim.parse_args(["--periods", "--configs", "10s"])


if __name__ == "__main__":
    unittest.main()
