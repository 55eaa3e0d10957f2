"""Interop with an independent SIP user agent: baresip (Debian `baresip-core`) registers
through the signaling gateway's internal side with MD5 digest authentication, the registrar
lists its binding, and baresip's un-REGISTER on exit removes it.

baresip 1.0.0 behaviour this relies on (checked against this gateway):
- the config dir is written before the first start (an empty dir makes baresip write a
  template that listens on 0.0.0.0); only account.so (and uuid.so for RFC 5626) is loaded,
  no audio, no control module: `baresip -f DIR -s -t SECONDS </dev/null`;
- the account line `<sip:USER@example.com>;auth_pass=...;outbound="sip:127.0.0.1:GW"
  ;regint=600` sends REGISTER sip:example.com with `Route: <sip:127.0.0.1:GW;lr>` and
  `Contact: <sip:USER-0x...@127.0.0.1:PORT>;expires=600`; `;transport=tcp` inside the
  outbound URI makes it use TCP from an ephemeral port;
- it sends no +sip.instance/reg-id by default; `;sipnat=outbound` plus uuid.so (the UUID is
  read from DIR/uuid) adds `+sip.instance="<urn:uuid:...>";reg-id=1`;
- SIGTERM/SIGINT: it un-REGISTERs (expires=0, answering the 401 again) and exits 0;
- besides sip_listen (UDP+TCP) it listens on TCP sip_listen+1 (TLS, 127.0.0.1 too) and
  keeps two unconnected UDP sockets on wildcard ephemeral ports (libre's DNS client;
  1.0.0 has no setting to bind them elsewhere).

Environment: BARESIP (path of baresip, default from PATH), plus harness.py's.
"""

import os
import re
import signal
import sys
import time
import uuid as uuidlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baresip  # noqa: E402
import harness  # noqa: E402


class RegisteringBaresip(baresip.BaresipProcess):
    """A baresip on `host` (127.0.0.1 unless said) with account.so (and uuid.so, reading
    `uuid`) only: no audio, no control module (baresip.BaresipProcess starts and stops it)."""

    lifetime_s = 180   # baresip's own -t: it quits by itself if the test never stops it

    def __init__(self, parent_dir, name, account, modules=("account.so",), uuid=None,
                 host="127.0.0.1"):
        super().__init__(os.path.join(parent_dir, name), name, host)
        self.account = account
        self.modules = modules
        self.uuid = uuid

    def write_config(self):
        baresip.write_config(self.dir, self.host, self.port, self.account,
                             modules=["module_tmp %s" % m for m in self.modules],
                             uuid=self.uuid)


class BaresipInterop(baresip.DumpsAgentsOnFailure, harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = harness.Cluster(algorithms=("MD5",), name="baresip").start()

    # ---- helpers

    def agent(self, name, user, password=None, transport="udp", extra="", modules=None,
              uuid=None, host="127.0.0.1"):
        account = baresip.client_account(user, self.cluster.internal_port, password=password,
                                         transport=transport, extra=extra)
        ua = RegisteringBaresip(self.cluster.dir, name, account,
                                modules=modules or ("account.so",), uuid=uuid, host=host)
        self.agents.append(ua)
        self.addCleanup(ua.stop)
        return ua

    def bindings(self, aor):
        return self.cluster.registrations(aor)["bindings"]

    def wait_bindings(self, aor, count, timeout=10):
        """The AOR's bindings once there are exactly `count` of them (bounded wait)."""
        last = []

        def have():
            last[:] = self.bindings(aor)
            return len(last) == count

        baresip.wait_for(have, timeout, 0.2)
        self.assertEqual(len(last), count, "%s: expected %d binding(s), got %s"
                         % (aor, count, last))
        return list(last)

    def check_binding(self, binding, ua, transport, source_port):
        self.assertIn("baresip", binding["user_agent"])
        self.assertEqual(binding["source"], {"host": "127.0.0.1", "port": source_port,
                                             "transport": transport})
        suffix = "" if transport == "udp" else ";transport=%s" % transport
        self.assertRegex(binding["contact"], r"^sip:[^@]+@127\.0\.0\.1:%d%s$"
                         % (ua.port, re.escape(suffix)))
        self.assertEqual(binding["gateway_id"], "gw-e2e")
        self.assertLessEqual(binding["expires_in"], 600)
        self.assertGreater(binding["expires_in"], 570)

    def stop_and_check_unregistered(self, ua, aor):
        self.assertEqual(ua.stop(signal.SIGTERM), 0)
        self.wait_bindings(aor, 0)
        log = ua.log()
        self.assertRegex(log, r";expires=0\b", "no un-REGISTER in the trace")

    # ---- tests

    def test_1_udp_register_then_unregister_on_exit(self):
        aor = "sip:user005@%s" % harness.DOMAIN
        ua = self.agent("udp", "user005").start()
        bindings = self.wait_bindings(aor, 1)
        self.check_binding(bindings[0], ua, "udp", ua.port)
        log = ua.log()
        self.assertIn("user005@example.com: {0/UDP/v4} 200 OK (Medius/0.1) [1 binding]", log)
        # The digest exchange really happened: a 401 with an MD5 challenge, then credentials.
        self.assertRegex(log, r'WWW-Authenticate: Digest realm="example.com".*algorithm=MD5')
        self.assertRegex(log, r'Authorization: Digest username="user005"')
        self.stop_and_check_unregistered(ua, aor)

    def test_2_tcp_register_then_unregister_on_exit(self):
        aor = "sip:user006@%s" % harness.DOMAIN
        ua = self.agent("tcp", "user006", transport="tcp").start()
        bindings = self.wait_bindings(aor, 1)
        # Over TCP the source is baresip's connection, from an ephemeral port (-s trace).
        m = re.search(r"^TCP 127\.0\.0\.1:(\d+) -> 127\.0\.0\.1:%d$" % self.cluster.internal_port,
                      ua.log(), re.M)
        self.assertIsNotNone(m, "no TCP REGISTER in the trace")
        self.check_binding(bindings[0], ua, "tcp", int(m.group(1)))
        self.assertIn("user006@example.com: {0/TCP/v4} 200 OK (Medius/0.1) [1 binding]", ua.log())
        self.stop_and_check_unregistered(ua, aor)

    def test_3_wrong_password_never_gets_a_binding(self):
        """baresip answers every 401 (libre's loop limit is 16 requests), so with a wrong
        password it fails the digest check again and again: either it gives up with a
        final 401/403, or the gateway bans its address first (security.auth: 10 failures
        per source). It runs on its own address, 127.0.0.7, so the ban hits only it."""
        aor = "sip:user007@%s" % harness.DOMAIN
        failures = lambda: harness.metric_value(  # noqa: E731
            self.cluster.metrics("registrar"), "medius_registrar_auth_failures_total",
            {"reason": "bad_response"}) or 0.0
        bans = lambda: harness.metric_value(  # noqa: E731
            self.cluster.metrics("gateway"), "medius_gateway_auth_bans_total",
            {"scope": "source"}) or 0.0
        before, bans_before = failures(), bans()
        ua = self.agent("wrong", "user007", password="not-" + harness.user_password("user007"),
                        host="127.0.0.7")
        ua.start()
        ended = baresip.wait_for(
            lambda: re.search(r"reg: sip:user007@example\.com: (401|403) ", ua.log())
            or bans() > bans_before, 15)
        self.assertTrue(ended, "neither a 401/403 failure in baresip's log nor a ban")
        self.assertNotIn("200 OK", ua.log())
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            self.assertEqual(self.bindings(aor), [])
            time.sleep(0.3)
        self.assertGreaterEqual(failures() - before, 1)
        banned = bans() > bans_before
        code = ua.stop(signal.SIGTERM)
        if not banned:
            self.assertEqual(code, 0)
        # (A banned baresip's un-REGISTER on SIGTERM gets no answer: it would wait out
        # its transaction, and stop() ends it by SIGKILL.)
        self.assertEqual(self.bindings(aor), [])

    def test_4_outbound_instance_id_replaces_a_crashed_instance(self):
        """With ;sipnat=outbound and uuid.so, baresip sends +sip.instance and reg-id=1
        (RFC 5626). The registrar keys the binding by them: the same UA restarted on another
        port after a crash (no un-REGISTER) replaces its binding instead of adding one."""
        aor = "sip:user008@%s" % harness.DOMAIN
        instance = str(uuidlib.uuid4())
        modules = ("uuid.so", "account.so")
        first = self.agent("outbound-1", "user008", extra=";sipnat=outbound",
                           modules=modules, uuid=instance).start()
        bindings = self.wait_bindings(aor, 1)
        self.check_binding(bindings[0], first, "udp", first.port)
        self.assertEqual(bindings[0]["instance_id"], "urn:uuid:%s" % instance)
        self.assertEqual(bindings[0]["reg_id"], 1)
        self.assertIn('+sip.instance="<urn:uuid:%s>";reg-id=1' % instance, first.log())

        self.assertEqual(first.stop(signal.SIGKILL), -signal.SIGKILL)
        self.assertEqual(len(self.bindings(aor)), 1)   # nobody un-REGISTERed it
        second = self.agent("outbound-2", "user008", extra=";sipnat=outbound",
                            modules=modules, uuid=instance)
        second.start()
        self.assertNotEqual(second.port, first.port)
        replaced = baresip.wait_for(lambda: [b for b in self.bindings(aor)
                                             if b["source"]["port"] == second.port], 10, 0.2)
        self.assertTrue(replaced, "the restarted instance never registered")
        bindings = self.bindings(aor)
        self.assertEqual(len(bindings), 1, bindings)
        self.check_binding(bindings[0], second, "udp", second.port)
        self.assertEqual(bindings[0]["instance_id"], "urn:uuid:%s" % instance)
        self.stop_and_check_unregistered(second, aor)

    def test_5_services_alive(self):
        for svc in self.cluster.services:
            self.assertTrue(svc.alive(), "%s exited" % svc.name)


if __name__ == "__main__":
    harness.main()
