"""REGISTER end to end: SIPp through the gateway's internal side, against a real registrar.

One cluster (auth algorithms ["MD5"], SIPp only does MD5) for the whole class; the tests
run in name order and build on each other: 100 users register, re-register, some
un-register; medctl and /metrics must agree with what SIPp did at every step.
"""

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

USERS = ["user%03d" % i for i in range(100)]


class RegisterFlow(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = harness.Cluster(algorithms=("MD5",), name="register").start()
        # Every SIPp run of this class uses one local port, so that Contact URIs repeat
        # and a later run can address the bindings an earlier run made.
        cls.sipp_port = harness.free_port()
        cls.csv = harness.write_users_csv(os.path.join(cls.cluster.dir, "users.csv"), USERS)

    def register(self, users_csv, calls, expires, transport="u1", port=None):
        result = self.cluster.sipp("register.xml", "-key", "expires", str(expires),
                                   "-p", str(port or self.sipp_port), csv=users_csv,
                                   calls=calls, rate=50, transport=transport)
        self.assertEqual(result.returncode, 0, result.describe())
        return result

    def check_register_log(self, result, users, expires):
        """Each 200 carried our own Contact with the expiry we asked for."""
        seen = {}
        for line in result.log_lines:
            m = re.match(r"ok user=(\S+) got=(\S+) expires=(\d+) contact=(.*)$", line)
            self.assertIsNotNone(m, line)
            seen[m.group(1)] = (m.group(2), int(m.group(3)), m.group(4))
        self.assertEqual(sorted(seen), sorted(users))
        for user, (got, exp, contact) in seen.items():
            self.assertEqual(got, user, contact)
            self.assertIn("<sip:%s@127.0.0.1:" % user, contact)
            # The registrar counts expiry in milliseconds; a second may have passed.
            self.assertIn(exp, (expires, expires - 1), contact)

    def bindings(self):
        return self.cluster.registrations()["bindings"]

    def bindings_metric(self, expected):
        """medius_registrar_bindings, once it equals `expected` or after 5 s: the registrar
        refreshes the gauge from the store every sweep_interval_ms (1 s here)."""
        deadline = time.monotonic() + 5
        while True:
            value = harness.metric_value(self.cluster.metrics("registrar"),
                                         "medius_registrar_bindings")
            if value == expected or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    def test_01_options_answered_with_allow(self):
        result = self.cluster.sipp("options.xml", calls=1)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertEqual(len(result.log_lines), 1)
        allow = result.log_lines[0]
        for method in ("REGISTER", "OPTIONS"):
            self.assertIn(method, allow)

    def test_02_register_100_users(self):
        result = self.register(self.csv, 100, 3600)
        self.check_register_log(result, USERS, 3600)
        bindings = self.bindings()
        self.assertEqual(sorted(b["aor"] for b in bindings),
                         ["sip:%s@example.com" % u for u in USERS])
        for b in bindings:
            user = b["aor"][4:].split("@")[0]
            self.assertEqual(b["contact"], "sip:%s@127.0.0.1:%d" % (user, self.sipp_port))
            self.assertEqual(b["source"]["port"], self.sipp_port)
            self.assertEqual(b["source"]["transport"], "udp")
            self.assertEqual(b["user_agent"], "SIPp medius-e2e")
            self.assertGreaterEqual(b["expires_in"], 3590)
            self.assertLessEqual(b["expires_in"], 3600)
        # The human table lists the same bindings and the total.
        table = self.cluster.medctl("registrations", "--registrar",
                                    "127.0.0.1:%d" % self.cluster.registrar_grpc).stdout
        self.assertIn("100 bindings, 100 AORs", table)
        self.assertIn("sip:user042@example.com", table)
        self.assertEqual(self.bindings_metric(100), 100)

    def test_03_reregister_refreshes_instead_of_adding(self):
        result = self.register(self.csv, 100, 1800)
        self.check_register_log(result, USERS, 1800)
        bindings = self.bindings()
        self.assertEqual(len(bindings), 100)
        for b in bindings:
            self.assertLessEqual(b["expires_in"], 1800, b)
            self.assertGreaterEqual(b["expires_in"], 1790, b)
        self.assertEqual(self.bindings_metric(100), 100)

    def test_04_unregister_wildcard(self):
        removed = USERS[90:]
        csv = harness.write_users_csv(os.path.join(self.cluster.dir, "remove.csv"), removed)
        result = self.cluster.sipp("unregister_wildcard.xml", csv=csv, calls=len(removed),
                                   rate=50)
        self.assertEqual(result.returncode, 0, result.describe())
        for line in result.log_lines:
            self.assertRegex(line, r"^ok user=user09\d contact=$")  # no Contact left
        aors = sorted(b["aor"] for b in self.bindings())
        self.assertEqual(aors, ["sip:%s@example.com" % u for u in USERS[:90]])
        self.assertEqual(self.bindings_metric(90), 90)

    def test_05_unregister_one_contact(self):
        removed = USERS[80:90]
        csv = harness.write_users_csv(os.path.join(self.cluster.dir, "remove2.csv"), removed)
        result = self.cluster.sipp("unregister_contact.xml", "-p", str(self.sipp_port),
                                   csv=csv, calls=len(removed), rate=50)
        self.assertEqual(result.returncode, 0, result.describe())
        aors = sorted(b["aor"] for b in self.bindings())
        self.assertEqual(aors, ["sip:%s@example.com" % u for u in USERS[:80]])
        self.assertEqual(self.bindings_metric(80), 80)

    def test_06_wrong_password_never_200(self):
        users = USERS[:5] + ["alice"]
        csv = harness.write_users_csv(os.path.join(self.cluster.dir, "wrong.csv"), users,
                                      password_of=lambda u: "not-" + u)
        before = harness.metric_value(self.cluster.metrics("registrar"),
                                      "medius_registrar_auth_failures_total") or 0
        result = self.cluster.sipp("wrong_password.xml", csv=csv, calls=len(users), rate=50)
        self.assertEqual(result.returncode, 0, result.describe())
        # alice never registered: a wrong password must not have created a binding.
        self.assertEqual(self.cluster.registrations("sip:alice@example.com")["total"], 0)
        self.assertEqual(len(self.bindings()), 80)
        after = harness.metric_value(self.cluster.metrics("registrar"),
                                     "medius_registrar_auth_failures_total")
        self.assertGreaterEqual(after - before, len(users))

    def test_07_register_over_tcp_seen_by_watch(self):
        # medctl watch streams the binding this REGISTER creates.
        watch = subprocess.Popen(
            [os.path.join(harness.bin_dir(), "medctl"), "watch", "sip:bob@example.com",
             "--registrar", "127.0.0.1:%d" % self.cluster.registrar_grpc, "--json",
             "--snapshot", "--count", "2"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = json.loads(watch.stdout.readline())  # snapshot of no bindings
            self.assertEqual(first["event"], "snapshot-end")
            csv = harness.write_users_csv(os.path.join(self.cluster.dir, "bob.csv"), ["bob"])
            result = self.register(csv, 1, 600, transport="t1", port=harness.free_port())
            out, err = watch.communicate(timeout=20)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
        self.check_register_log(result, ["bob"], 600)
        self.assertEqual(watch.returncode, 0, err)
        event = json.loads(out.splitlines()[0])
        self.assertEqual(event["event"], "added")
        self.assertEqual(event["binding"]["aor"], "sip:bob@example.com")
        (binding,) = self.cluster.registrations("sip:bob@example.com")["bindings"]
        self.assertEqual(binding["source"]["transport"], "tcp")
        self.assertEqual(self.bindings_metric(81), 81)

    def test_08_metrics(self):
        registrar = self.cluster.metrics("registrar")
        self.assertEqual(self.bindings_metric(81), 81)
        ok = harness.metric_value(registrar, "medius_registrar_register_requests_total",
                                  {"result": "ok"})
        self.assertIsNotNone(ok)
        self.assertGreaterEqual(ok, 100 + 100 + 10 + 10 + 1)
        gateway = self.cluster.metrics("gateway")
        registers = harness.metric_value(gateway, "medius_gateway_sip_requests_total",
                                         {"method": "REGISTER", "side": "internal"})
        # Each successful registration is two REGISTERs (challenge, then credentials).
        self.assertGreaterEqual(registers, 2 * (100 + 100 + 10 + 10 + 1))
        ok_responses = harness.metric_value(gateway, "medius_gateway_sip_responses_total",
                                            {"method": "REGISTER", "code_class": "2xx",
                                             "side": "internal"})
        self.assertGreaterEqual(ok_responses, 221)
        challenged = harness.metric_value(gateway, "medius_gateway_sip_responses_total",
                                          {"method": "REGISTER", "code_class": "4xx",
                                           "side": "internal"})
        self.assertGreaterEqual(challenged, 221 + 6)
        options = harness.metric_value(gateway, "medius_gateway_sip_requests_total",
                                       {"method": "OPTIONS"})
        self.assertGreaterEqual(options, 1)
        latency = harness.metric_value(gateway, "medius_gateway_grpc_client_seconds_count")
        self.assertGreaterEqual(latency, 221)

    def test_09_processes_alive(self):
        self.assertTrue(self.cluster.registrar.alive())
        self.assertTrue(self.cluster.gateway.alive())


if __name__ == "__main__":
    harness.main()
