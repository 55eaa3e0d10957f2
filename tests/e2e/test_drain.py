"""Draining a gateway and a media worker behind Kamailio during a load run (issue 8, item 5).

The real Kamailio (deploy/kamailio/kamailio.cfg, as in test_load_balancer.py) on 127.0.0.5
in front of two gateways ("gw-e2e" of the calls cluster and the replica "gw-b"); two media
workers, both known to both gateways; the PBX trunk is a SIPp UAS that answers and echoes
RTP; callers are SIPp UACs on 127.0.0.22 (bob dials 2200) that send RTP (uac_call.xml plays
a PCMA pcap for 7 s) for 8 s and hang up. Draining limits are long here
(MEDIUS_DRAIN_TIMEOUT_SECONDS=60): every call must end by itself.

What is checked, during a SIPp load run:
- SIGTERM to gateway b: its health turns NOT_SERVING, its OPTIONS answers 503 and Kamailio's
  probes take it out of the set; every call of the run succeeds (SIPp: no failed call), a
  new INVITE that still meets gateway b is refused with 503 and failed over by Kamailio to
  gateway a; gateway b starts no call after the SIGTERM, each call it carried ends with the
  caller's BYE, and it exits 0 once its last call has ended;
- SIGTERM to media worker 2: no session is created on it afterwards (the CDRs name the
  worker of each call), every call it carried ends normally, and it exits 0 once its last
  session is deleted;
- a second SIGTERM during a gateway's drain ends its calls at once with BYE (CDR end_cause
  "shutdown") and it exits 0.
"""

import datetime
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402

LB_HOST = "127.0.0.5"
CALLER_HOST = "127.0.0.22"
PBX = "pbx"
DETECT_S = 20
DRAIN_LIMIT_S = 60
CALLS = 30
RATE = 5
# Longer than the 5 s that SIGTERM used to give calls (service.shutdown_timeout_ms): before
# draining, the gateway ended them with BYE and the worker dropped their sessions then.
DURATION_MS = 8000


class DrainCluster(harness.TwoWorkerCluster):
    """Two media workers, both known to both gateways, and a long drain limit."""

    def media_env(self):
        env = super().media_env()
        env["MEDIUS_DRAIN_TIMEOUT_SECONDS"] = str(DRAIN_LIMIT_S)
        return env

    def gateway_env(self):
        env = super().gateway_env()
        env["MEDIUS_DRAIN_TIMEOUT_SECONDS"] = str(DRAIN_LIMIT_S)
        return env


def started_at(record):
    """A CDR's started_at as seconds since the epoch."""
    text = record["started_at"].replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(text).timestamp()


class DrainTest(harness.LoadBalancedTestCase):

    @classmethod
    def make_cluster(cls):
        return DrainCluster(name="drain", calls=True, with_media=True)

    @classmethod
    def tearDownClass(cls):
        # After a failed test, calls may be left (their BYE never came): with the long drain
        # limit here, a second SIGTERM ends them at once (docs: second signal = end now).
        if cls.cluster is not None:
            live = [s for s in cls.cluster.services if s.alive()]
            if cls.gw_b is not None and cls.gw_b.service is not None and cls.gw_b.service.alive():
                live.append(cls.gw_b.service)
            for sig in (signal.SIGTERM, signal.SIGTERM):
                for svc in live:
                    if svc.alive():
                        os.kill(svc.pid, sig)
                time.sleep(0.3)
        code = cls.tear_down_extras()
        super().tearDownClass()
        if code != 0:
            raise AssertionError("gateway b exited %s" % code)

    def setUp(self):
        self.lb = None
        self.uac = None
        if not self.gw_b.service.alive():
            self.gw_b.stop()   # drained by an earlier test: closes its log
            self.gw_b.start()
        wait_until(lambda: not self.gateway_calls(), 60, "no call left on the gateways")
        self.lb = harness.Kamailio(self.cluster.dir, [self.gw_a_uri, self.gw_b.sip_uri],
                                   host=LB_HOST)
        wait_until(lambda: len(self.lb.destinations()) == 2 and all(
            f.startswith("A") for f in self.lb.destinations().values()), DETECT_S,
            "both gateways active in the dispatcher")

    def tearDown(self):
        if getattr(self, "uac", None) is not None and self.uac.alive():
            self.uac.stop()
        super().tearDown()

    # ---- helpers

    def sessions(self, address):
        rc = self.cluster.medctl("sessions", "--media", address, "--json", check=False)
        return json.loads(rc.stdout).get("sessions") or [] if rc.returncode == 0 else None

    def load(self, prefix):
        """CALLS calls at RATE/s through the LB, each DURATION_MS long with RTP."""
        return harness.SippProcess(
            "uac_call.xml", self.cluster.dir, "-s", "2200",
            "-au", "bob", "-ap", harness.user_password("bob"),
            "-cid_str", "%s-%%u@medius-e2e" % prefix, target=self.lb.address,
            local_ip=CALLER_HOST, keys={"caller": "bob", "from_host": harness.DOMAIN,
                                         "ruri_host": harness.DOMAIN},
            calls=CALLS, rate=RATE, duration_ms=DURATION_MS, timeout=180,
            name="%s-%d" % (prefix, time.monotonic_ns()))

    def assert_all_ok(self, uac, what):
        result = uac.wait()
        stats = uac.stats()
        self.assertEqual(result.returncode, 0, "%s:\n%s" % (what, result.describe()))
        self.assertEqual(int(stats.get("SuccessfulCall(C)", "0")), CALLS, "%s: %s" % (what, stats))
        self.assertEqual(int(stats.get("FailedCall(C)", "0")), 0, "%s: %s" % (what, stats))

    def assert_ended_normally(self, records, what):
        self.assertTrue(records, "%s: no call" % what)
        for r in records:
            self.assertEqual(r.get("final_status"), 200, "%s: %s" % (what, r))
            self.assertEqual(r.get("end_cause"), "caller-bye", "%s: %s" % (what, r))

    def health(self, address):
        return self.cluster.medctl("health", "--target", address, check=False)

    # ---- tests

    def test_sigterm_drains_a_gateway_behind_kamailio(self):
        a_before = len(self.cluster.cdr_records())
        b_before = len(self.gw_b.cdr_records())
        uac = self.uac = self.load("drG")
        # Calls in progress on gateway b, then SIGTERM.
        wait_until(lambda: len(self.gateway_calls(self.gw_b.grpc)) >= 5, 30,
                   "calls in progress on gateway b")
        carried = len(self.gateway_calls(self.gw_b.grpc))
        os.kill(self.gw_b.service.pid, signal.SIGTERM)
        term_wall, term = time.time(), time.monotonic()

        wait_until(lambda: self.health("127.0.0.1:%d" % self.gw_b.grpc).returncode != 0, 5,
                   "gateway b NOT_SERVING")
        wait_until(lambda: self.lb.destinations().get(self.gw_b.sip_uri, "").startswith("I"),
                   DETECT_S, "gateway b out of the dispatcher set (OPTIONS 503)")
        out_s = time.monotonic() - term
        self.assertTrue(self.gw_b.service.alive(), "gateway b left the set only by exiting")

        wait_until(lambda: not self.gw_b.service.alive(), DURATION_MS / 1000 + 30,
                   "gateway b exits after its last call")
        exit_s = time.monotonic() - term
        code = self.gw_b.service.proc.wait()
        self.assertEqual(code, 0, "gateway b exited %s" % code)
        self.assert_all_ok(uac, "calls while gateway b drains")
        log = self.gw_b.log_text()
        self.assertIn("drained: no calls left", log)

        wait_until(lambda: len(self.cluster.cdr_records()) - a_before
                   + len(self.gw_b.cdr_records()) - b_before >= CALLS, 10, "every CDR written")
        b_records = self.gw_b.cdr_records()[b_before:]
        a_records = self.cluster.cdr_records()[a_before:]
        self.assertEqual(len(a_records) + len(b_records), CALLS)
        self.assert_ended_normally(b_records, "calls gateway b carried")
        self.assert_ended_normally(a_records, "calls gateway a carried")
        late = [r for r in b_records if started_at(r) > term_wall + 0.2]
        self.assertEqual(late, [], "gateway b started calls after its SIGTERM")
        self.assertGreater(len(a_records), 0)
        refused = log.count("refused: draining")
        failovers = self.lb.log_text().count("refused the INVITE with 503")
        self.assertEqual(failovers, refused, "each INVITE b refused was failed over")
        print("\ngateway b: %d call(s) in progress at SIGTERM, %d in all; out of the set "
              "%.1fs after SIGTERM; %d INVITE(s) refused with 503 and failed over; exited 0 "
              "%.1fs after SIGTERM" % (carried, len(b_records), out_s, refused, exit_s),
              file=sys.stderr)

    def test_sigterm_drains_a_media_worker(self):
        a_before = len(self.cluster.cdr_records())
        b_before = len(self.gw_b.cdr_records())
        media2 = self.cluster.media2
        address = self.cluster.media2_address
        uac = self.uac = self.load("drM")
        wait_until(lambda: len(self.sessions(address) or []) >= 5, 30,
                   "sessions on media worker 2")
        carried = len(self.sessions(address))
        os.kill(media2.pid, signal.SIGTERM)
        term_wall, term = time.time(), time.monotonic()
        wait_until(lambda: self.health(address).returncode != 0, 5, "worker 2 NOT_SERVING")
        # Its created-session counter stops moving (sampled until it exits).
        time.sleep(0.3)
        created_at_term = harness.metric_value(self.cluster.media2_metrics_text(),
                                               "medius_media_sessions_total", {"result": "ok"})
        created_last, refused_last = created_at_term, 0
        deadline = time.monotonic() + DURATION_MS / 1000 + 30
        while media2.alive() and time.monotonic() < deadline:
            try:
                text = self.cluster.media2_metrics_text()
            except OSError:  # its metrics server stops a moment before the process exits
                time.sleep(0.2)
                continue
            created_last = harness.metric_value(text, "medius_media_sessions_total",
                                                {"result": "ok"})
            refused_last = harness.metric_value(text, "medius_media_sessions_total",
                                                {"result": "unavailable"}) or 0
            time.sleep(0.2)
        try:
            media2.proc.wait(5)
        except Exception:
            self.fail("media worker 2 did not exit after its last session")
        exit_s = time.monotonic() - term
        self.assert_all_ok(uac, "calls while media worker 2 drains")
        self.assertEqual(media2.proc.returncode, 0, "media worker 2 exited %s"
                         % media2.proc.returncode)
        self.assertEqual(created_last, created_at_term, "sessions created on worker 2 after "
                         "its SIGTERM")
        self.assertIn("drained: no sessions left", media2.log_text())

        wait_until(lambda: len(self.cluster.cdr_records()) - a_before
                   + len(self.gw_b.cdr_records()) - b_before >= CALLS, 10, "every CDR written")
        records = self.cluster.cdr_records()[a_before:] + self.gw_b.cdr_records()[b_before:]
        self.assertEqual(len(records), CALLS)
        on2 = [r for r in records if r.get("media_worker") == address]
        self.assert_ended_normally(on2, "calls on media worker 2")
        for r in on2:
            # The worker answered the DeleteSession at the call's end: it relayed until then.
            media = r.get("media") or {}
            self.assertGreater((media.get("leg_a") or {}).get("packets_out", 0), 0,
                               "no media stats: the session was gone before the call ended: %s"
                               % r)
        self.assert_ended_normally(records, "all calls")
        late = [r for r in on2 if started_at(r) > term_wall + 0.2]
        self.assertEqual(late, [], "calls anchored on worker 2 after its SIGTERM")
        print("\nmedia worker 2: %d session(s) at SIGTERM, %d call(s) in all; %d "
              "CreateSession refused while draining; exited 0 %.1fs after SIGTERM"
              % (carried, len(on2), refused_last, exit_s), file=sys.stderr)

    def test_sigterm_twice_ends_calls_now(self):
        """A second SIGTERM during the drain ends the calls at once with BYE (the callers
        wait for it), and the gateway exits 0 well before the 60 s limit."""
        b_before = len(self.gw_b.cdr_records())
        count = 3
        uac = self.uac = harness.SippProcess(
            "uac_call_wait_bye.xml", self.cluster.dir, "-s", "2200",
            "-au", "bob", "-ap", harness.user_password("bob"), target="127.0.0.1:%d"
            % self.gw_b.internal_port, local_ip=CALLER_HOST,
            keys={"caller": "bob", "from_host": harness.DOMAIN, "ruri_host": harness.DOMAIN},
            calls=count, rate=10, timeout=60, name="drT-%d" % time.monotonic_ns())
        wait_until(lambda: len(self.gateway_calls(self.gw_b.grpc)) == count, 20,
                   "the calls up on gateway b")
        os.kill(self.gw_b.service.pid, signal.SIGTERM)
        wait_until(lambda: "draining: %d calls in progress" % count in self.gw_b.log_text(), 5,
                   "gateway b draining")
        time.sleep(1)
        self.assertTrue(self.gw_b.service.alive(), "gateway b did not wait for its calls")
        os.kill(self.gw_b.service.pid, signal.SIGTERM)
        second = time.monotonic()
        wait_until(lambda: not self.gw_b.service.alive(), 10, "gateway b exits")
        self.assertEqual(self.gw_b.service.proc.wait(), 0)
        self.assertLess(time.monotonic() - second, 10)
        result = uac.wait(20)
        self.assertEqual(result.returncode, 0, result.describe())
        records = self.gw_b.cdr_records()[b_before:]
        self.assertEqual([r.get("end_cause") for r in records], ["shutdown"] * count, records)
        self.assertIn("second signal", self.gw_b.log_text())


if __name__ == "__main__":
    harness.main()
