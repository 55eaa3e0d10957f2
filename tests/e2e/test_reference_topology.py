"""The reference topology's own configuration (examples/local/*.json, what `./medius up`
loads) works with SIPp and medctl route, and docs/metrics.md lists exactly the medius_*
metrics the running services (registrar, routing, media-transcoder, gateway) export.

The services read the example files unchanged; only their listen addresses move to free
ports, through the documented MEDIUS_* environment overrides, so this test can run next to
a cluster started by `./medius up`.
"""

import os
import re
import signal
import socket
import ssl
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples", "local")
METRICS_DOC = os.path.join(ROOT, "docs", "metrics.md")
PASSWORDS = {"alice": "secret-alice", "bob": "secret-bob"}


def documented_metrics():
    """Metric names in the first column of docs/metrics.md's tables."""
    names = set()
    with open(METRICS_DOC) as f:
        for line in f:
            m = re.match(r"^\|\s*`(medius_[a-z0-9_]+)`\s*\|", line)
            if m:
                names.add(m.group(1))
    return names


def exported_metrics(text):
    """medius_* metric families in a /metrics page (histogram series folded)."""
    names = set()
    for line in text.splitlines():
        m = re.match(r"^# TYPE (medius_[a-z0-9_]+) ", line)
        if m:
            names.add(m.group(1))
    return names


class ReferenceTopology(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        cluster = harness.Cluster(name="reference", with_routing=True)
        # The example files themselves, not generated ones.
        cluster.registrar_config = os.path.join(EXAMPLES, "registrar.json")
        cluster.routing_config = os.path.join(EXAMPLES, "routing.json")
        cluster.gateway_config = os.path.join(EXAMPLES, "gateway.json")
        # Its TLS listener (internal.tls) with the throwaway CA of deploy/certs, as
        # `./medius up` makes it, through the documented overrides.
        certs = harness.make_certs(cluster.certs_dir)
        cluster.gateway_env_extra = {
            "MEDIUS_INTERNAL_TLS_CERT": os.path.join(certs, "gateway.pem"),
            "MEDIUS_INTERNAL_TLS_KEY": os.path.join(certs, "gateway.key"),
            "MEDIUS_INTERNAL_TLS_CA": os.path.join(certs, "ca.pem")}
        cls.cluster = cluster.start()
        # The media-transcoder on examples/local/media.json, listen addresses moved likewise;
        # started through the cluster so that it is stopped (and its exit code checked) with it.
        cls.media_grpc = harness.free_port()
        cls.media_metrics = harness.free_port()
        try:
            cluster._start("media-transcoder", os.path.join(EXAMPLES, "media.json"),
                           {"MEDIUS_GRPC_LISTEN": "127.0.0.1:%d" % cls.media_grpc,
                            "MEDIUS_METRICS_LISTEN": "127.0.0.1:%d" % cls.media_metrics},
                           cls.media_grpc)
        except Exception:
            cluster.dump_logs()
            cluster.stop()
            raise

    def test_1_sipp_registers_alice_and_bob(self):
        csv = harness.write_users_csv(os.path.join(self.cluster.dir, "ref.csv"),
                                      ["alice", "bob"], password_of=PASSWORDS.get)
        result = self.cluster.sipp("register.xml", "-key", "expires", "600", csv=csv,
                                   calls=2, rate=10)
        self.assertEqual(result.returncode, 0, result.describe())
        listed = self.cluster.registrations()
        self.assertEqual(sorted(b["aor"] for b in listed["bindings"]),
                         ["sip:alice@example.com", "sip:bob@example.com"])
        for b in listed["bindings"]:
            self.assertLessEqual(b["expires_in"], 600)
            self.assertGreater(b["expires_in"], 590)

    def test_1b_tls_listener_serves_with_the_lab_ca(self):
        ctx = ssl.create_default_context(cafile=os.path.join(self.cluster.certs_dir, "ca.pem"))
        with socket.create_connection(("127.0.0.1", self.cluster.tls_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                self.assertIn(tls.version(), ("TLSv1.2", "TLSv1.3"))
                host, port = tls.getsockname()
                tls.sendall(("OPTIONS sip:example.com SIP/2.0\r\n"
                             "Via: SIP/2.0/TLS %s:%d;branch=z9hG4bKref1;rport\r\n"
                             "Max-Forwards: 70\r\nFrom: <sip:probe@example.com>;tag=1\r\n"
                             "To: <sip:example.com>\r\nCall-ID: ref-tls-1\r\n"
                             "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                             % (host, port)).encode())
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        self.assertTrue(data.startswith(b"SIP/2.0 200 "), data)

    def test_2_wrong_password_is_refused(self):
        csv = harness.write_users_csv(os.path.join(self.cluster.dir, "bad.csv"), ["alice"],
                                      password_of=lambda u: "not-" + PASSWORDS[u])
        result = self.cluster.sipp("wrong_password.xml", csv=csv, calls=1)
        self.assertEqual(result.returncode, 0, result.describe())

    def test_3_metrics_match_the_documentation(self):
        # Make every lazily created series exist: REGISTER traffic happened above; a
        # registrar outage creates the gRPC error counter.
        self.cluster.stop_registrar()
        client = harness.SipClient(self.cluster.internal_port)
        self.addCleanup(client.close)
        # With credentials: only the registrar can check them (a REGISTER without any may be
        # challenged by the gateway from the sets the registrar issued in advance).
        response = client.request(
            "REGISTER", user="alice",
            authorization='Digest username="alice", realm="%s", nonce="n", uri="sip:%s", '
                          'response="00", qop=auth, nc=00000001, cnonce="c"'
                          % (harness.DOMAIN, harness.DOMAIN))
        self.assertIsNotNone(response)
        self.assertEqual(response.status, 503, response.raw)
        gateway = exported_metrics(self.cluster.metrics("gateway"))
        self.cluster.start_registrar()
        registrar = exported_metrics(self.cluster.metrics("registrar"))
        routing = exported_metrics(self.cluster.metrics("routing"))
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.media_metrics,
                                    timeout=5) as r:
            media = exported_metrics(r.read().decode())
        exported = gateway | registrar | routing | media
        documented = documented_metrics()
        self.assertTrue(registrar and all(n.startswith("medius_registrar_") for n in registrar))
        self.assertTrue(gateway and all(n.startswith("medius_gateway_") for n in gateway))
        self.assertTrue(routing and all(n.startswith("medius_routing_") for n in routing))
        self.assertTrue(media and all(n.startswith("medius_media_") for n in media))
        self.assertEqual(sorted(exported - documented), [],
                         "exported but not in docs/metrics.md")
        # The gateway's trunk series exist once it has routing's trunk list. This
        # cluster's gateway is not connected to routing (harness: the example trunks
        # answer nothing here, the keepalive would report them down under test_4);
        # test_trunk_health.py checks those series against docs/metrics.md.
        trunk_series = {"medius_gateway_trunk_up", "medius_gateway_trunk_options_total",
                        "medius_gateway_trunk_call_attempts_total",
                        "medius_gateway_trunk_call_answers_total",
                        "medius_gateway_trunk_call_failures_total",
                        "medius_gateway_trunk_active_calls"}
        self.assertEqual(sorted(documented - exported - trunk_series), [],
                         "in docs/metrics.md but not exported")
        # The required metrics are among them.
        for name in ("medius_registrar_bindings", "medius_registrar_register_requests_total",
                     "medius_registrar_auth_failures_total", "medius_gateway_sip_requests_total",
                     "medius_gateway_sip_responses_total", "medius_gateway_grpc_client_seconds",
                     "medius_routing_decisions_total", "medius_routing_decision_seconds",
                     "medius_routing_config_reloads_total", "medius_routing_trunk_up",
                     "medius_routing_config_info", "medius_media_sessions_active",
                     "medius_media_packets_total", "medius_media_port_pool_free"):
            self.assertIn(name, exported)

    def test_4_medctl_route_explains_the_reference_dial_plan(self):
        # The "done means": alice's 2200 goes to the PBX in the PBX's format...
        rc = self.cluster.medctl("route", "--routing", self.cluster.routing_address,
                                 "--from", "alice", "--to", "2200")
        self.assertIn("ROUTED", rc.stdout)
        self.assertIn("trunk pbx", rc.stdout)
        self.assertIn("number 2200", rc.stdout)
        # ... and bob may not call London.
        rc = self.cluster.medctl("route", "--routing", self.cluster.routing_address,
                                 "--from", "bob", "--to", "011442071234567", check=False)
        self.assertEqual(rc.returncode, 1, rc.stdout + rc.stderr)
        self.assertIn("FORBIDDEN (SIP 403)", rc.stdout)

    def test_5_sighup_stops_no_service(self):
        # SIGHUP means "reload" (routing) or nothing (the others); it never stops a service.
        running = [svc for svc in self.cluster.services if svc.alive()]
        self.assertEqual(sorted(svc.name for svc in running),
                         ["media-transcoder", "registrar", "routing", "signaling-gateway"])
        for svc in running:
            os.kill(svc.pid, signal.SIGHUP)
        time.sleep(1)
        for svc in running:
            self.assertTrue(svc.alive(), "%s stopped on SIGHUP" % svc.name)
        client = harness.SipClient(self.cluster.internal_port)
        self.addCleanup(client.close)
        response = client.request("OPTIONS", user="probe", contact=False, expires=None)
        self.assertIsNotNone(response)
        self.assertEqual(response.status, 200, response.raw)


if __name__ == "__main__":
    harness.main()
