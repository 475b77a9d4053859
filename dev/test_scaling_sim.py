"""Invariants of dev/scaling_sim.py.

    python3 -m unittest discover -s dev -p 'test_scaling_sim.py'
    python3 dev/test_scaling_sim.py
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
        self.assertEqual(len(table), 2 + len(sim.TRACES) * len(sim.CONFIGS))

    def test_markdown_only(self):
        text = self.capture("--horizon", "1800", "--markdown-only")
        self.assertTrue(all(ln.startswith("|") for ln in text.strip().splitlines()))

    def test_json(self):
        data = json.loads(self.capture("--horizon", "1800", "--json", "--traces", "spike"))
        self.assertEqual(len(data["results"]), len(sim.CONFIGS))
        self.assertIn("spike", data["acceptance"])

    def test_phase_sweep(self):
        text = self.capture("--horizon", "1800", "--traces", "spike", "--phase-sweep", "3", "--markdown-only")
        self.assertEqual(len(text.strip().splitlines()), 2 + len(sim.CONFIGS))


if __name__ == "__main__":
    unittest.main()
