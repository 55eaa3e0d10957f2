"""OPTIONS keepalive to every trunk, health reported to routing (issue 5, item 1).

Real registrar, routing and signaling-gateway processes. The routing config is a copy of
examples/local/routing.json whose trunks point at 127.0.0.11/12/13 on free ports; SIPp
UASes (`sipp -sn uas -aa`, which answers OPTIONS with 200) play pstn-primary and
pstn-backup; nothing listens for pbx. The gateway probes every 300 ms and needs two
failures to mark a trunk down.

- pstn-primary and pstn-backup are up (gateway and routing metrics), pbx is down (ICMP:
  a transport error); `medctl route --from bob --to 2065550123` offers both PSTN trunks;
- SIPp of pstn-primary stopped -> routing marks it down within a bounded time, and the
  same route offers only pstn-backup;
- SIPp restarted -> up again, both offered again;
- SIPp of pstn-backup frozen (SIGSTOP: its port stays bound, nothing answers) -> the
  probes time out and it goes down; SIGCONT -> up again;
- the gateway's trunk metrics are the ones docs/metrics.md lists (the reference topology
  test cannot see them: its gateway is not connected to routing).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples", "local")
METRICS_DOC = os.path.join(ROOT, "docs", "metrics.md")
TRUNK_HOSTS = {"pstn-primary": "127.0.0.11", "pstn-backup": "127.0.0.12", "pbx": "127.0.0.13"}
INTERVAL_MS = 300
FAILURES_TO_DOWN = 2
# Down needs FAILURES_TO_DOWN rounds; the rest is slack for a loaded machine.
BOUND_S = 10.0


class SippTrunk:
    """A SIPp UAS at host:port; stopped by its PID."""

    def __init__(self, host, port, workdir, name):
        self.host, self.port, self.workdir, self.name = host, port, workdir, name
        self.proc = None
        self.runs = 0
        self.media_port = harness.free_port(host)

    def start(self):
        self.runs += 1
        log = open(os.path.join(self.workdir, "%s-%d.out" % (self.name, self.runs)), "wb")
        self.proc = subprocess.Popen(
            [harness.sipp_path(), "-sn", "uas", "-i", self.host, "-p", str(self.port), "-aa",
             "-mp", str(self.media_port),
             "-nostdin", "-trace_err", "-error_file",
             os.path.join(self.workdir, "%s-%d_errors.log" % (self.name, self.runs))],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


class TrunkHealth(harness.E2ETestCase):
    trunks = {}

    @classmethod
    def setUpClass(cls):
        cluster = harness.Cluster(name="trunk-health", with_routing=True,
                                  gateway_uses_routing=True)
        ports = {name: harness.free_port(host) for name, host in TRUNK_HOSTS.items()}
        with open(os.path.join(EXAMPLES, "routing.json")) as f:
            routing = json.load(f)
        for trunk in routing["trunks"]:
            trunk["address"] = "%s:%d" % (TRUNK_HOSTS[trunk["name"]], ports[trunk["name"]])
        cluster.routing_config = os.path.join(cluster.dir, "routing-trunks.json")
        with open(cluster.routing_config, "w") as f:
            json.dump(routing, f, indent=2)
        # The generated gateway.json plus the keepalive (ports come through the env).
        gateway = harness.gateway_config(cluster.gateway_grpc, cluster.gateway_metrics,
                                         cluster.internal_port, cluster.trunk_port,
                                         cluster.registrar_grpc)
        gateway["routing"] = {"address": "127.0.0.1:%d" % cluster.routing_grpc, "timeout_ms": 1000}
        gateway["trunk_keepalive"] = {"interval_ms": INTERVAL_MS,
                                      "failures_to_down": FAILURES_TO_DOWN, "successes_to_up": 1}
        cluster.gateway_config = os.path.join(cluster.dir, "gateway-keepalive.json")
        with open(cluster.gateway_config, "w") as f:
            json.dump(gateway, f, indent=2)
        cls.trunks = {name: SippTrunk(TRUNK_HOSTS[name], ports[name], cluster.dir, name)
                      for name in ("pstn-primary", "pstn-backup")}
        for trunk in cls.trunks.values():
            trunk.start()
        try:
            cls.cluster = cluster.start()
        except Exception:
            for trunk in cls.trunks.values():
                trunk.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        for trunk in cls.trunks.values():
            trunk.stop()
        super().tearDownClass()

    # ---- helpers

    def gateway_up(self, trunk):
        return harness.metric_value(self.cluster.metrics("gateway"), "medius_gateway_trunk_up",
                                    {"trunk": trunk})

    def routing_up(self, trunk):
        return harness.metric_value(self.cluster.metrics("routing"), "medius_routing_trunk_up",
                                    {"trunk": trunk})

    def offered_trunks(self):
        rc = self.cluster.medctl("route", "--routing", self.cluster.routing_address,
                                 "--from", "bob", "--to", "2065550123", "--json", check=False)
        explanation = json.loads(rc.stdout)
        plan = explanation["plan"]
        trunks = []
        for group in plan.get("groups", []):
            for target in group.get("targets", []):
                if "trunk" in target:
                    trunks.append(target["trunk"]["trunk"])
        return plan["outcome"], trunks

    # ---- tests (in name order)

    def test_1_answering_trunks_are_up_and_the_silent_one_is_down(self):
        for name in ("pstn-primary", "pstn-backup"):
            wait_until(lambda: harness.metric_value(
                self.cluster.metrics("gateway"), "medius_gateway_trunk_options_total",
                {"trunk": name, "result": "ok"}), BOUND_S, "an OPTIONS answered by " + name)
            self.assertEqual(self.gateway_up(name), 1.0)
            self.assertEqual(self.routing_up(name), 1.0)
        # Nothing listens for pbx: ICMP port unreachable, nta's local 503, "error".
        wait_until(lambda: self.routing_up("pbx") == 0.0, BOUND_S, "pbx down in routing")
        self.assertEqual(self.gateway_up("pbx"), 0.0)
        self.assertGreaterEqual(harness.metric_value(
            self.cluster.metrics("gateway"), "medius_gateway_trunk_options_total",
            {"trunk": "pbx", "result": "error"}) or 0, FAILURES_TO_DOWN)
        outcome, trunks = self.offered_trunks()
        self.assertEqual(outcome, "OUTCOME_ROUTED")
        self.assertEqual(trunks, ["pstn-primary", "pstn-backup"])

    def test_2_a_trunk_that_stops_answering_goes_down_then_up_again(self):
        primary = self.trunks["pstn-primary"]
        primary.stop()
        started = time.monotonic()
        wait_until(lambda: self.routing_up("pstn-primary") == 0.0, BOUND_S,
                   "pstn-primary down in routing")
        took = time.monotonic() - started
        print("pstn-primary reported down %.2fs after its SIPp stopped" % took)
        self.assertEqual(self.gateway_up("pstn-primary"), 0.0)
        self.assertEqual(self.routing_up("pstn-backup"), 1.0)
        outcome, trunks = self.offered_trunks()
        self.assertEqual(outcome, "OUTCOME_ROUTED")
        self.assertEqual(trunks, ["pstn-backup"])

        primary.start()
        wait_until(lambda: self.routing_up("pstn-primary") == 1.0, BOUND_S,
                   "pstn-primary up again in routing")
        self.assertEqual(self.gateway_up("pstn-primary"), 1.0)
        outcome, trunks = self.offered_trunks()
        self.assertEqual(trunks, ["pstn-primary", "pstn-backup"])

    def test_3_trunk_metrics_are_documented(self):
        with open(METRICS_DOC) as f:
            documented = set(re.findall(r"^\|\s*`(medius_gateway_trunk_[a-z_]+)`\s*\|", f.read(),
                                        re.M))
        exported = set(re.findall(r"^# TYPE (medius_gateway_trunk_[a-z_]+) ",
                                  self.cluster.metrics("gateway"), re.M))
        self.assertEqual(exported, {"medius_gateway_trunk_up", "medius_gateway_trunk_options_total",
                                    "medius_gateway_trunk_call_attempts_total",
                                    "medius_gateway_trunk_call_answers_total",
                                    "medius_gateway_trunk_call_failures_total",
                                    "medius_gateway_trunk_active_calls"})
        self.assertEqual(documented, exported)
        text = self.cluster.metrics("gateway")
        self.assertIsNotNone(harness.metric_value(text, "medius_gateway_grpc_client_seconds_count",
                                                  {"service": "routing", "method": "ListTrunks"}))
        self.assertIsNotNone(harness.metric_value(
            text, "medius_gateway_grpc_client_seconds_count",
            {"service": "routing", "method": "ReportTrunkHealth"}))

    def test_4_a_trunk_that_hangs_times_out(self):
        backup = self.trunks["pstn-backup"]
        timeouts = harness.metric_value(self.cluster.metrics("gateway"),
                                        "medius_gateway_trunk_options_total",
                                        {"trunk": "pstn-backup", "result": "timeout"}) or 0
        os.kill(backup.proc.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: self.routing_up("pstn-backup") == 0.0, BOUND_S,
                       "pstn-backup down in routing")
            self.assertGreaterEqual(harness.metric_value(
                self.cluster.metrics("gateway"), "medius_gateway_trunk_options_total",
                {"trunk": "pstn-backup", "result": "timeout"}) - timeouts, FAILURES_TO_DOWN)
            outcome, trunks = self.offered_trunks()
            self.assertEqual(trunks, ["pstn-primary"])
        finally:
            os.kill(backup.proc.pid, signal.SIGCONT)
        wait_until(lambda: self.routing_up("pstn-backup") == 1.0, BOUND_S,
                   "pstn-backup up again in routing")


if __name__ == "__main__":
    harness.main()
