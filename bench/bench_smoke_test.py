#!/usr/bin/env python3
"""Smoke test of ./medius bench (ctest bench_smoke, labels bench and e2e): runs bench/bench.py
--smoke into a temp dir and checks that it works end to end: exit 0, a results JSON and
Markdown table written, every row asked for present, and every row carrying a number or an
explicit reason ("peer unavailable: ..."). It never asserts a speed: figures from a test
machine mean nothing. MEDIUS_BIN_DIR: the build's bin/ directory."""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class BenchSmoke(unittest.TestCase):
    def test_smoke_run_writes_every_row(self):
        out = tempfile.mkdtemp(prefix="medius-bench-smoke-")
        argv = ["/usr/bin/python3", os.path.join(HERE, "bench.py"), "--smoke", "--check",
                "--out", out, "--bin-dir", os.environ["MEDIUS_BIN_DIR"]]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=540)
        self.assertEqual(proc.returncode, 0, proc.stdout[-6000:] + proc.stderr[-4000:])
        results = glob.glob(os.path.join(out, "*.json"))
        self.assertEqual(len(results), 1, os.listdir(out))
        self.assertTrue(glob.glob(os.path.join(out, "*.md")))
        with open(results[0]) as f:
            result = json.load(f)
        with open(results[0][:-len(".json")] + ".md") as f:
            table = f.read()
        kinds = {r["row"] for r in result["rows"]}
        self.assertEqual(kinds, {"calls", "register", "relay", "transcode", "latency",
                                 "memory"})
        # Measured on both sides here: distinct users registered once each.
        bindings = [r for r in result["rows"]
                    if r["metric"].startswith("memory per registration")]
        self.assertEqual(len(bindings), 1, result["rows"])
        self.assertIsNotNone(bindings[0]["medius"], bindings[0])
        self.assertIsNotNone(bindings[0]["peer"], bindings[0])
        for r in result["rows"]:
            what = "%s / %s" % (r["row"], r["metric"])
            self.assertTrue(r["medius"] is not None or r["medius_unavailable"], what)
            self.assertTrue(r["peer"] is not None or r["peer_unavailable"], what)
            # A reason is fine ("peer unavailable: ...", "failed calls at the fixed rate" on
            # a saturated machine); a harness that broke is not.
            for side in ("medius_unavailable", "peer_unavailable"):
                self.assertFalse((r[side] or "").startswith("run failed"), "%s: %s"
                                 % (what, r[side]))
            if r["peer"] is None:
                self.assertIn(r["peer_unavailable"], table, what)
        # rtpengine installed (Debian's build has G.722): the transcode row has its peer's
        # figure, from a run in which both sides received their own codec and heard the
        # other side's tone (or, in a run too short to show CPU, "not measured"; never "peer
        # unavailable": rtpengine can transcode this path).
        if shutil.which("rtpengine") or os.access("/usr/bin/rtpengine", os.X_OK):
            transcode = [r for r in result["rows"] if r["row"] == "transcode"]
            self.assertTrue(transcode, result["rows"])
            for r in transcode:
                if r["peer"] is None:
                    self.assertTrue(r["peer_unavailable"].startswith("not measured"), r)
        # The media added latency rows (issue 9), from the relay and transcode runs: the relay
        # pairs packets exactly (an index in the payload), so Medius always has its figure.
        media = {r["metric"]: r for r in result["rows"]
                 if r["metric"].startswith("media added latency")}
        self.assertEqual(sorted(media), sorted(
            ["media added latency, relay RTP<->RTP, 10 streams p50",
             "media added latency, relay RTP<->RTP, 10 streams p99",
             "media added latency, transcode PCMU<->G.722 p50",
             "media added latency, transcode PCMU<->G.722 p99"]), result["rows"])
        for metric, r in media.items():
            self.assertEqual((r["row"], r["unit"], r["better"]), ("latency", "us", "lower"), r)
            if "relay" in metric:
                self.assertIsNotNone(r["medius"], r)
        # The Markdown table was printed too.
        self.assertIn("| row | what | Medius | peer | ratio |", proc.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
