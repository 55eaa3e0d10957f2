#!/usr/bin/env python3
"""Tests of ./medius bench's soak (ctest bench_soak, labels bench and e2e).

- The soak's verdict and memory trend on their own: a process that opens file descriptors between the start
  and the end figures, calls or sessions left at the end, a process gone, each fails it;
  unchanged figures pass (no cluster, a child process that opens /dev/null on demand).
- A short soak end to end (bench.py --smoke --rows soak --soak-seconds N --rate N --check):
  exit 0, the soak's rows in the JSON and the table, memory sampled while the calls ran,
  no fd gained or lost by any service, no session or call left. Never asserts a speed or
  a memory figure. MEDIUS_BIN_DIR: the build's bin/ directory."""

import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402


def snapshot(named_pids, calls=0, sessions=0, gauges=None):
    return {"procs": bench.process_figures(named_pids), "calls": calls, "sessions": sessions,
            "gauges": gauges or {}}


class SoakVerdict(unittest.TestCase):
    def setUp(self):
        # Opens one more /dev/null per line it reads, answers with its count; says "ready"
        # once started (the interpreter opens files while it starts).
        self.child = subprocess.Popen(
            [sys.executable, "-c", "import os, sys\nfds = []\nprint('ready', flush=True)\n"
             "for line in sys.stdin:\n"
             "    fds.append(os.open('/dev/null', os.O_RDONLY))\n"
             "    print(len(fds), flush=True)\n"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(self.stop_child)
        self.assertEqual(self.child.stdout.readline().strip(), "ready")

    def stop_child(self):
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()
        self.child.stdin.close()
        self.child.stdout.close()

    def open_fds(self, n):
        for _ in range(n):
            self.child.stdin.write("open\n")
            self.child.stdin.flush()
            self.child.stdout.readline()

    def test_unchanged_figures_pass(self):
        start = snapshot({"svc": self.child.pid})
        end = snapshot({"svc": self.child.pid})
        self.assertEqual(bench.soak_problems(start, end), [])

    def test_fds_opened_between_start_and_end_fail(self):
        start = snapshot({"svc": self.child.pid})
        self.open_fds(3)
        end = snapshot({"svc": self.child.pid})
        problems = bench.soak_problems(start, end)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("svc: %d open file descriptors at the end, %d at the start"
                      % (start["procs"]["svc"]["fds"] + 3, start["procs"]["svc"]["fds"]),
                      problems[0])
        # The whole run's check fails on it.
        self.assertTrue(bench.check({"rows": [], "soak_problems": problems}))

    def test_process_gone_fails(self):
        start = snapshot({"svc": self.child.pid})
        self.stop_child()
        end = snapshot({"svc": self.child.pid})
        self.assertIsNone(end["procs"]["svc"]["fds"])
        self.assertIn("gone", " ".join(bench.soak_problems(start, end)))

    def test_sessions_or_calls_left_fail(self):
        idle = {"sessions_active": 0.0}
        start = snapshot({"svc": self.child.pid}, gauges=idle)
        pid = self.child.pid
        for end, word in ((snapshot({"svc": pid}, sessions=2, gauges=idle), "media sessions"),
                          (snapshot({"svc": pid}, calls=1, gauges=idle), "gateway calls"),
                          (snapshot({"svc": pid}, calls=None, gauges=idle), "unknown"),
                          (snapshot({"svc": pid}, gauges={"sessions_active": 1.0}),
                           "sessions_active"),
                          (snapshot({"svc": pid}, gauges={}), "sessions_active")):
            problems = bench.soak_problems(start, end)
            self.assertEqual(len(problems), 1, problems)
            self.assertIn(word, problems[0])


class SoakTrend(unittest.TestCase):
    @staticmethod
    def samples(anon):
        """Samples 1,000 calls apart with these total anonymous memory figures, KiB."""
        return [{"phase": "running", "calls_done": 1000 * i, "anon_total_kib": a}
                for i, a in enumerate(anon)]

    def test_linear_growth_is_its_slope(self):
        # 10 KiB per 1,000 calls: 1,000 KiB per 100,000.
        self.assertAlmostEqual(bench.trend_kib_per_100k(self.samples(
            [100 + 10 * i for i in range(10)])), 1000.0)

    def test_an_early_step_is_not_a_trend(self):
        self.assertAlmostEqual(bench.trend_kib_per_100k(self.samples(
            [100, 100, 4000, 4000, 4000, 4000, 4000, 4000, 4000, 4000])), 0.0)

    def test_too_few_samples(self):
        self.assertIsNone(bench.trend_kib_per_100k(self.samples([1, 2])))


class SoakEndToEnd(unittest.TestCase):
    def test_short_soak(self):
        out = tempfile.mkdtemp(prefix="medius-bench-soak-")
        argv = ["/usr/bin/python3", os.path.join(HERE, "bench.py"), "--smoke", "--check",
                "--rows", "soak", "--soak-seconds", "12", "--rate", "20", "--out", out,
                "--bin-dir", os.environ["MEDIUS_BIN_DIR"]]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=240)
        self.assertEqual(proc.returncode, 0, proc.stdout[-6000:] + proc.stderr[-4000:])
        results = glob.glob(os.path.join(out, "*.json"))
        self.assertEqual(len(results), 1, os.listdir(out))
        with open(results[0]) as f:
            result = json.load(f)
        self.assertEqual(result["soak_problems"], [])
        rows = {r["metric"]: r for r in result["rows"]}
        self.assertEqual({r["row"] for r in result["rows"]}, {"soak"})
        for r in rows.values():
            self.assertEqual(r["peer_unavailable"], bench.SOAK_PEER)
            self.assertIsNotNone(r["medius"], r)
        self.assertEqual(rows["open file descriptors gained or lost, all services "
                              "(must be 0)"]["medius"], 0)
        self.assertEqual(rows["media sessions at the end (must equal the start)"]["medius"], 0)
        self.assertEqual(
            rows["gateway calls in progress at the end (must equal the start)"]["medius"], 0)
        soak = result["raw"]["soak"]
        self.assertEqual(set(soak["start"]["procs"]), {"registrar", "routing",
                                                       "media-transcoder",
                                                       "signaling-gateway"})
        self.assertGreater(soak["calls_made"], 0)
        running = [s for s in soak["samples"] if s["phase"] == "running"]
        self.assertGreaterEqual(len(running), 3, soak["samples"])
        self.assertTrue(all(s["anon_total_kib"] > 0 and s["pss_total_kib"] > 0
                            for s in soak["samples"]))
        # The table was printed, with the soak's rows.
        self.assertIn("| soak | memory growth per 100,000 calls (KiB) |", proc.stdout)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return
        self.assertTrue(glob.glob(os.path.join(out, "*-soak.png")), os.listdir(out))


if __name__ == "__main__":
    unittest.main(verbosity=2)
