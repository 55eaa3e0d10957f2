"""The routing service end to end: a real `routing` process on the reference topology's
routing.json (examples/local, copied to a temp file so the test can change it) next to a
real registrar, driven by `medctl route` / `medctl reload`, SIGHUP, and raw gRPC calls.

RouteCall is called through grpcio's generic API with a few lines of protobuf wire
encoding below (grpc_tools, which would generate stubs, is not a Debian package).
"""

import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

REFERENCE = os.path.join(harness.ROOT, "examples", "local", "routing.json")


# ---------------------------------------------------------------- protobuf wire format

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number, value):
    data = value.encode() if isinstance(value, str) else value
    return _varint((number << 3) | 2) + _varint(len(data)) + data


def _varint_field(number, value):
    return _varint(number << 3) + _varint(value)


def _decode(data):
    """{field number: [values]} of one message (varints as int, length-delimited as bytes)."""
    fields, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 2:
            size, i = _read_varint(data, i)
            value, i = data[i:i + size], i + size
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        else:
            raise ValueError("wire type %d" % wire)
        fields.setdefault(number, []).append(value)
    return fields


def _read_varint(data, i):
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def route_call_request(caller, callee, internal_user=None, trunk=None, call_id="e2e"):
    """medius.v1.RouteCallRequest: caller=1, callee=2, source=3 {internal_user=1 | trunk=2},
    call_id=6."""
    source = _field(1, internal_user) if internal_user is not None else _field(2, trunk)
    return _field(1, caller) + _field(2, callee) + _field(3, source) + _field(6, call_id)


def plan_summary(data):
    """(outcome, config_hash, request_uri of the first trunk target or None) of a RoutePlan:
    outcome=1, groups=5 {targets=1 {trunk=2 {request_uri=2}}}, config_hash=6."""
    plan = _decode(data)
    uri = None
    for group in plan.get(5, []):
        for target in _decode(group).get(1, []):
            trunk = _decode(target).get(2)
            if trunk and uri is None:
                uri = _decode(trunk[0]).get(2, [b""])[0].decode()
    return plan.get(1, [0])[0], plan.get(6, [b""])[0].decode(), uri


def trunk_health_report(gateway_id, entries):
    """medius.v1.TrunkHealthReport: gateway_id=1, trunks=2 {trunk=1, up=2, last_code=3}."""
    out = _field(1, gateway_id)
    for trunk, up, code in entries:
        out += _field(2, _field(1, trunk) + _varint_field(2, int(up)) + _varint_field(3, code))
    return out


def list_trunks_summary(data):
    """{name: up} of a ListTrunksResponse: trunks=1 {name=1, up=3}."""
    out = {}
    for info in _decode(data).get(1, []):
        fields = _decode(info)
        out[fields[1][0].decode()] = bool(fields.get(3, [0])[0])
    return out


def list_trunks_media(data):
    """{name: (srtp, [codecs])} of a ListTrunksResponse: trunks=1 {name=1, media=5 {srtp=1,
    codecs=2}}."""
    out = {}
    for info in _decode(data).get(1, []):
        fields = _decode(info)
        media = _decode(fields.get(5, [b""])[0])
        out[fields[1][0].decode()] = (media.get(1, [0])[0], [c.decode() for c in media.get(2, [])])
    return out


SRTP_POLICY_OFF, SRTP_POLICY_OPTIONAL = 1, 2
OUTCOME_ROUTED = 1


class RoutingClient:
    def __init__(self, address):
        self.channel = grpc.insecure_channel(address)
        self.route_call = self.channel.unary_unary("/medius.v1.Routing/RouteCall")
        self.report_trunk_health = self.channel.unary_unary(
            "/medius.v1.Routing/ReportTrunkHealth")
        self.list_trunks = self.channel.unary_unary("/medius.v1.Routing/ListTrunks")

    def close(self):
        self.channel.close()


# ---------------------------------------------------------------- the tests

def load_reference():
    with open(REFERENCE) as f:
        return json.load(f)


def with_pbx_port(config, port):
    """The reference config with the PBX trunk moved to another port (a visible change)."""
    config = json.loads(json.dumps(config))
    for trunk in config["trunks"]:
        if trunk["name"] == "pbx":
            host = trunk["address"].rsplit(":", 1)[0]
            trunk["address"] = "%s:%d" % (host, port)
    return config


def broken(config):
    """The reference config with a route naming a trunk that does not exist."""
    config = json.loads(json.dumps(config))
    config["routes"][0]["trunks"] = ["no-such-trunk"]
    return config


class Routing(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        cluster = harness.Cluster(name="routing", with_gateway=False, with_routing=True)
        # A copy: the tests rewrite it and reload.
        cls.config_path = os.path.join(cluster.dir, "routing.json")
        shutil.copyfile(REFERENCE, cls.config_path)
        cluster.routing_config = cls.config_path
        cls.cluster = cluster.start()

    def setUp(self):
        self.write(load_reference())
        self.reload()

    # ---- helpers

    def write(self, config):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(config, f, indent=2)
        os.replace(tmp, self.config_path)

    def route(self, *args, check=False):
        return self.cluster.medctl("route", "--routing", self.cluster.routing_address, *args,
                                   check=check)

    def reload(self):
        return self.cluster.medctl("reload", "--routing", self.cluster.routing_address,
                                   check=False)

    def explain(self, *args):
        rc = self.route("--json", *args)
        self.assertIn(rc.returncode, (0, 1), rc.stdout + rc.stderr)
        return json.loads(rc.stdout)

    def metrics(self):
        return self.cluster.metrics("routing")

    def reloads(self, result):
        return harness.metric_value(self.metrics(), "medius_routing_config_reloads_total",
                                    {"result": result}) or 0

    def config_info_hashes(self):
        return set(re.findall(r'^medius_routing_config_info\{hash="([0-9a-f]+)"\} 1',
                              self.metrics(), re.M))

    def wait_for(self, what, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail("timed out waiting for " + what)
            time.sleep(0.05)

    def sighup(self):
        os.kill(self.cluster.routing.pid, signal.SIGHUP)

    # ---- what an operator sees

    def test_1_alice_dials_2200_to_the_pbx_in_its_format(self):
        rc = self.route("--from", "alice", "--to", "2200")
        self.assertEqual(rc.returncode, 0, rc.stdout + rc.stderr)
        self.assertTrue(rc.stdout.startswith("ROUTED"), rc.stdout)
        self.assertIn("+14255552200", rc.stdout)  # normalized
        self.assertIn("trunk pbx", rc.stdout)
        self.assertIn("sip:2200@127.0.0.13:5060", rc.stdout)
        self.assertIn("number 2200", rc.stdout)
        self.assertIn("How it was decided", rc.stdout)

    def test_1_bob_may_not_call_international(self):
        rc = self.route("--from", "bob", "--to", "011442071234567")
        self.assertEqual(rc.returncode, 1, rc.stdout + rc.stderr)
        self.assertTrue(rc.stdout.startswith("FORBIDDEN (SIP 403)"), rc.stdout)
        self.assertIn("+442071234567", rc.stdout)
        self.assertIn("national", rc.stdout)  # bob's voice policy is named

    def test_1_json_is_the_explanation(self):
        doc = self.explain("--from", "alice", "--to", "011442071234567")
        self.assertEqual(doc["plan"]["outcome"], "OUTCOME_ROUTED")
        self.assertEqual(doc["plan"]["called_number"], "+442071234567")
        trunks = [t["trunk"]["trunk"] for g in doc["plan"]["groups"] for t in g["targets"]]
        self.assertEqual(trunks, ["pstn-primary"])
        self.assertTrue(doc["steps"])
        self.assertEqual(self.config_info_hashes(), {doc["plan"]["config_hash"]})

    def test_1_trunks_carry_their_media_policy(self):
        doc = self.explain("--from", "alice", "--to", "2200")
        media = doc["plan"]["groups"][0]["targets"][0]["trunk"]["media"]
        self.assertEqual(media, {"srtp": "SRTP_POLICY_OFF", "codecs": ["PCMU", "PCMA"]})
        rc = self.route("--from", "alice", "--to", "2200")
        self.assertIn("codecs PCMU, PCMA  srtp off", rc.stdout)
        client = RoutingClient(self.cluster.routing_address)
        self.addCleanup(client.close)
        self.assertEqual(list_trunks_media(client.list_trunks(b"", timeout=10)),
                         {"pstn-primary": (SRTP_POLICY_OFF, ["PCMU", "PCMA", "G729"]),
                          "pstn-backup": (SRTP_POLICY_OFF, ["PCMU", "PCMA", "G729"]),
                          "pbx": (SRTP_POLICY_OFF, ["PCMU", "PCMA"])})
        # A reload changes it; names come back normalized.
        config = load_reference()
        config["trunks"][2]["srtp"] = "optional"
        config["trunks"][2]["codecs"] = ["g722", "pcmu"]
        self.write(config)
        self.assertEqual(self.reload().returncode, 0)
        self.assertEqual(list_trunks_media(client.list_trunks(b"", timeout=10))["pbx"],
                         (SRTP_POLICY_OPTIONAL, ["G722", "PCMU"]))

    def test_1_unreachable_routing_exits_3(self):
        argv = ["route", "--routing", "127.0.0.1:%d" % harness.free_port(), "--from", "alice",
                "--to", "2200"]
        rc = self.cluster.medctl("--timeout-ms", "1000", *argv, check=False)
        self.assertEqual(rc.returncode, 3, rc.stdout + rc.stderr)
        self.assertIn("cannot reach the routing service", rc.stderr)

    def test_1_usage_errors_exit_2(self):
        rc = self.route("--to", "2200")  # neither --from nor --from-trunk
        self.assertEqual(rc.returncode, 2, rc.stdout + rc.stderr)

    # ---- reload

    def test_2_sighup_with_a_broken_file_keeps_the_old_config(self):
        old = self.explain("--from", "alice", "--to", "2200")["plan"]["config_hash"]
        failed = self.reloads("failed")
        self.write(broken(load_reference()))
        self.sighup()
        self.wait_for("reloads_total{failed}", lambda: self.reloads("failed") == failed + 1)
        doc = self.explain("--from", "alice", "--to", "2200")
        self.assertEqual(doc["plan"]["config_hash"], old)
        self.assertEqual(doc["plan"]["outcome"], "OUTCOME_ROUTED")
        self.assertEqual(self.config_info_hashes(), {old})
        log = self.cluster.routing.log_text()
        self.assertIn(self.config_path + ": $.routes[0]", log)
        self.assertIn("no-such-trunk", log)

        # Then a good change is picked up on the next SIGHUP.
        ok = self.reloads("ok")
        self.write(with_pbx_port(load_reference(), 5070))
        self.sighup()
        self.wait_for("reloads_total{ok}", lambda: self.reloads("ok") == ok + 1)
        rc = self.route("--from", "alice", "--to", "2200")
        self.assertEqual(rc.returncode, 0, rc.stdout + rc.stderr)
        self.assertIn("sip:2200@127.0.0.13:5070", rc.stdout)
        new = self.explain("--from", "alice", "--to", "2200")["plan"]["config_hash"]
        self.assertNotEqual(new, old)
        self.assertIn(new, rc.stdout)
        self.assertEqual(self.config_info_hashes(), {new})  # the old series is gone

    def test_2_medctl_reload_reports_the_error_then_the_hash(self):
        before = self.explain("--from", "alice", "--to", "2200")["plan"]["config_hash"]
        self.write(broken(load_reference()))
        rc = self.reload()
        self.assertEqual(rc.returncode, 1, rc.stdout + rc.stderr)
        self.assertIn(self.config_path + ": $.routes[0]", rc.stderr)
        self.assertIn("old configuration keeps serving", rc.stderr)

        self.write(with_pbx_port(load_reference(), 5071))
        rc = self.reload()
        self.assertEqual(rc.returncode, 0, rc.stdout + rc.stderr)
        after = self.explain("--from", "alice", "--to", "2200")["plan"]["config_hash"]
        self.assertNotEqual(after, before)
        self.assertEqual(rc.stdout, "reloaded: now serving config %s\n" % after)

        unchanged = self.reloads("unchanged")
        rc = self.reload()
        self.assertEqual(rc.returncode, 0, rc.stdout + rc.stderr)
        self.assertEqual(rc.stdout, "config %s unchanged (the file has the same hash)\n" % after)
        self.assertEqual(self.reloads("unchanged"), unchanged + 1)

    def test_3_concurrent_requests_see_the_old_or_the_new_config(self):
        configs = {5060: load_reference(), 5072: with_pbx_port(load_reference(), 5072)}
        hashes = {}
        for port, config in configs.items():
            self.write(config)
            self.assertEqual(self.reload().returncode, 0)
            hashes[port] = self.explain("--from", "alice", "--to", "2200")["plan"]["config_hash"]
        expected = {hashes[port]: "sip:2200@127.0.0.13:%d" % port for port in configs}
        self.assertEqual(len(expected), 2)

        stop = threading.Event()
        seen = {h: 0 for h in expected}
        bad = []
        lock = threading.Lock()

        def record(config_hash, uri, how):
            with lock:
                if expected.get(config_hash) != uri:
                    bad.append((how, config_hash, uri))
                else:
                    seen[config_hash] += 1

        def grpc_load():
            client = RoutingClient(self.cluster.routing_address)
            request = route_call_request("sip:alice@example.com", "sip:2200@example.com",
                                         internal_user="sip:alice@example.com")
            try:
                while not stop.is_set():
                    outcome, config_hash, uri = plan_summary(client.route_call(request,
                                                                               timeout=10))
                    if outcome != OUTCOME_ROUTED:
                        record(config_hash, "outcome %d" % outcome, "RouteCall")
                    else:
                        record(config_hash, uri, "RouteCall")
            finally:
                client.close()

        def medctl_load():
            while not stop.is_set():
                doc = self.explain("--from", "alice", "--to", "2200")
                target = doc["plan"]["groups"][0]["targets"][0]["trunk"]
                record(doc["plan"]["config_hash"], target["request_uri"], "ExplainRoute")

        def wait_seen(config_hash):
            count = seen[config_hash]
            self.wait_for("an answer from config " + config_hash,
                          lambda: seen[config_hash] > count or bad)

        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(grpc_load) for _ in range(4)]
            futures += [pool.submit(medctl_load) for _ in range(2)]
            try:
                for i in range(6):
                    port = 5072 if i % 2 == 0 else 5060
                    self.write(configs[port])
                    if i % 3 == 0:
                        self.sighup()  # asynchronous: wait for its answers below
                    else:
                        self.assertEqual(self.reload().returncode, 0)
                    wait_seen(hashes[port])
            finally:
                stop.set()
                for f in futures:
                    f.result()
        self.assertEqual(bad, [])
        self.assertTrue(all(count > 0 for count in seen.values()), seen)

    # ---- trunk health

    def test_4_a_trunk_reported_down_is_skipped_and_shown(self):
        client = RoutingClient(self.cluster.routing_address)
        self.addCleanup(client.close)
        self.assertEqual(list_trunks_summary(client.list_trunks(b"", timeout=10)),
                         {"pstn-primary": True, "pstn-backup": True, "pbx": True})
        client.report_trunk_health(trunk_health_report("gw-e2e", [("pstn-primary", False, 503)]),
                                   timeout=10)
        self.addCleanup(client.report_trunk_health,
                        trunk_health_report("gw-e2e", [("pstn-primary", True, 200)]), timeout=10)
        self.assertEqual(list_trunks_summary(client.list_trunks(b"", timeout=10))["pstn-primary"],
                         False)
        text = self.metrics()
        self.assertEqual(harness.metric_value(text, "medius_routing_trunk_up",
                                              {"trunk": "pstn-primary"}), 0)
        self.assertEqual(harness.metric_value(text, "medius_routing_trunk_up",
                                              {"trunk": "pstn-backup"}), 1)
        # bob's national call fails over to the backup only.
        doc = self.explain("--from", "bob", "--to", "2065550123")
        trunks = [t["trunk"]["trunk"] for g in doc["plan"]["groups"] for t in g["targets"]]
        self.assertEqual(trunks, ["pstn-backup"])
        skipped = [s for s in doc["steps"] if s["subject"] == "pstn-primary" and not s["taken"]]
        self.assertTrue(skipped, doc["steps"])
        # The health survives a reload; a reload keeps the gauge.
        self.write(with_pbx_port(load_reference(), 5073))
        self.assertEqual(self.reload().returncode, 0)
        self.assertEqual(harness.metric_value(self.metrics(), "medius_routing_trunk_up",
                                              {"trunk": "pstn-primary"}), 0)

    def test_4_a_trunk_removed_by_a_reload_leaves_the_gauges_and_list(self):
        config = load_reference()
        config["trunks"] = [t for t in config["trunks"] if t["name"] != "pstn-backup"]
        for r in config["routes"]:
            r["trunks"] = [t for t in r["trunks"]
                           if (t if isinstance(t, str) else t.get("name")) != "pstn-backup"]
        self.write(config)
        rc = self.reload()
        self.assertEqual(rc.returncode, 0, rc.stdout + rc.stderr)
        client = RoutingClient(self.cluster.routing_address)
        self.addCleanup(client.close)
        self.assertEqual(sorted(list_trunks_summary(client.list_trunks(b"", timeout=10))),
                         ["pbx", "pstn-primary"])
        text = self.metrics()
        self.assertIsNone(harness.metric_value(text, "medius_routing_trunk_up",
                                               {"trunk": "pstn-backup"}))
        self.assertEqual(harness.metric_value(text, "medius_routing_trunk_up",
                                              {"trunk": "pbx"}), 1)

    def test_5_a_bad_config_at_start_is_one_line_and_exit_2(self):
        path = os.path.join(self.cluster.dir, "bad-routing.json")
        with open(path, "w") as f:
            json.dump(broken(load_reference()), f)
        env = dict(os.environ, **self.cluster.routing_env())
        env["MEDIUS_GRPC_LISTEN"] = "127.0.0.1:%d" % harness.free_port()
        env["MEDIUS_METRICS_LISTEN"] = "127.0.0.1:%d" % harness.free_port()
        rc = subprocess.run([os.path.join(harness.bin_dir(), "routing"), "--config", path],
                            capture_output=True, text=True, timeout=30, env=env)
        self.assertEqual(rc.returncode, 2, rc.stderr)
        self.assertEqual(rc.stdout, "")
        self.assertTrue(rc.stderr.startswith("config error: %s: $.routes[0]" % path), rc.stderr)
        self.assertEqual(rc.stderr.count("\n"), 1, rc.stderr)

    def test_6_requests_without_callee_or_source_are_invalid(self):
        client = RoutingClient(self.cluster.routing_address)
        self.addCleanup(client.close)
        errors = harness.metric_value(self.metrics(), "medius_routing_decisions_total",
                                      {"outcome": "error"}) or 0
        no_callee = route_call_request("sip:alice@example.com", "",
                                       internal_user="sip:alice@example.com")
        no_source = _field(1, "sip:alice@example.com") + _field(2, "sip:2200@example.com")
        for request, words in ((no_callee, "callee"), (no_source, "source")):
            with self.assertRaises(grpc.RpcError) as caught:
                client.route_call(request, timeout=10)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn(words, caught.exception.details())
        self.assertEqual(harness.metric_value(self.metrics(), "medius_routing_decisions_total",
                                              {"outcome": "error"}), errors + 2)

    # ---- the registrar down (last: it stops the registrar)

    def test_9_registrar_down_makes_inbound_calls_unavailable(self):
        errors = harness.metric_value(self.metrics(), "medius_routing_decisions_total",
                                      {"outcome": "error"}) or 0
        self.cluster.stop_registrar()
        rc = self.route("--from-trunk", "pstn-primary", "--to", "4255550100")
        self.assertEqual(rc.returncode, 3, rc.stdout + rc.stderr)
        self.assertIn("unavailable", rc.stderr)
        self.assertIn("registrar", rc.stderr)

        client = RoutingClient(self.cluster.routing_address)
        self.addCleanup(client.close)
        request = route_call_request("tel:+12065550123", "sip:4255550100@example.com",
                                     trunk="pstn-primary")
        with self.assertRaises(grpc.RpcError) as caught:
            client.route_call(request, timeout=10)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("registrar", caught.exception.details())
        self.assertEqual(harness.metric_value(self.metrics(), "medius_routing_decisions_total",
                                              {"outcome": "error"}), errors + 1)

        # Outbound calls need no registrar.
        rc = self.route("--from", "alice", "--to", "2200")
        self.assertEqual(rc.returncode, 0, rc.stdout + rc.stderr)


if __name__ == "__main__":
    harness.main()
