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
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid as uuidlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MODULE_PATH = "/usr/lib/baresip/modules"
LIFETIME_S = 180   # baresip's own -t: it quits by itself if the test never stops it
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def baresip_path():
    return os.environ.get("BARESIP", shutil.which("baresip") or "baresip")


def free_sip_port():
    """A free UDP+TCP port whose next port is free for TCP too (baresip's TLS listener)."""
    for _ in range(50):
        port = harness.free_port()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        finally:
            s.close()
        harness._given_ports.add(port + 1)
        return port
    raise RuntimeError("no free port pair")


def wait_for(predicate, timeout, interval=0.1):
    """predicate()'s first truthy value within timeout seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Baresip:
    """One baresip process with its own config dir; stopped by its PID only."""

    def __init__(self, parent_dir, name, account, modules=("account.so",), uuid=None):
        self.name = name
        self.dir = os.path.join(parent_dir, name)
        os.makedirs(self.dir)
        self.account = account          # the accounts line, with {port} not yet known
        self.modules = modules
        self.uuid = uuid
        self.log_path = os.path.join(self.dir, "baresip.log")
        self.proc = None
        self.port = None

    def write_config(self):
        lines = ["sip_listen 127.0.0.1:%d" % self.port,
                 "net_interface 127.0.0.1",
                 "module_path %s" % MODULE_PATH]
        lines += ["module_tmp %s" % m for m in self.modules]
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write(self.account + "\n")
        if self.uuid:
            with open(os.path.join(self.dir, "uuid"), "w") as f:
                f.write(self.uuid)

    def start(self, attempts=3):
        """Starts it and waits for "baresip is ready."; another port when its SIP port was
        taken in the meantime."""
        for attempt in range(1, attempts + 1):
            self.port = free_sip_port()
            self.write_config()
            with open(self.log_path, "ab") as log:
                log.write(b"\n===== start on port %d =====\n" % self.port)
                log.flush()
                self.proc = subprocess.Popen(
                    [baresip_path(), "-f", self.dir, "-s", "-t", str(LIFETIME_S)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            ready = wait_for(lambda: "baresip is ready." in self.log()
                             or self.proc.poll() is not None, 15)
            if ready and self.proc.poll() is None and "baresip is ready." in self.log():
                return self
            self.stop(timeout=5)
            if "in use" not in self.log() or attempt == attempts:
                raise AssertionError("baresip %s did not start:\n%s" % (self.name, self.log()))
        return self

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signal, wait, SIGKILL after timeout; the exit code (-9 when killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def log(self):
        """The log as text: colours removed, the status line's \\r made newlines."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")

    def dump(self, out=sys.stderr):
        print("\n===== baresip %s (%s) =====" % (self.name, self.log_path), file=out)
        print(self.log()[-30000:], file=out)
        out.flush()


class BaresipInterop(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = harness.Cluster(algorithms=("MD5",), name="baresip").start()

    def run(self, result=None):
        result = result or self.defaultTestResult()
        self.agents = []
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for agent in self.agents:
                agent.dump()
        return out

    # ---- helpers

    def agent(self, name, user, password=None, transport="udp", extra="", modules=None,
              uuid=None):
        password = password if password is not None else harness.user_password(user)
        outbound = "sip:127.0.0.1:%d" % self.cluster.internal_port
        if transport != "udp":
            outbound += ";transport=%s" % transport
        account = ('<sip:%s@%s>;auth_pass=%s;outbound="%s";regint=600%s'
                   % (user, harness.DOMAIN, password, outbound, extra))
        ua = Baresip(self.cluster.dir, name, account,
                     modules=modules or ("account.so",), uuid=uuid)
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

        wait_for(have, timeout, 0.2)
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
        aor = "sip:user007@%s" % harness.DOMAIN
        failures = lambda: harness.metric_value(  # noqa: E731
            self.cluster.metrics("registrar"), "medius_registrar_auth_failures_total",
            {"reason": "bad_response"}) or 0.0
        before = failures()
        ua = self.agent("wrong", "user007", password="not-" + harness.user_password("user007"))
        ua.start()
        # baresip gives up after libre's 16-request loop limit (every 401 carries a fresh
        # nonce, so it answers each one) and logs the final status.
        failed = wait_for(lambda: re.search(r"reg: sip:user007@example\.com: (401|403) ",
                                            ua.log()), 15)
        self.assertTrue(failed, "no 401/403 failure in baresip's log")
        self.assertNotIn("200 OK", ua.log())
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            self.assertEqual(self.bindings(aor), [])
            time.sleep(0.3)
        self.assertGreaterEqual(failures() - before, 1)
        self.assertEqual(ua.stop(signal.SIGTERM), 0)
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
        replaced = wait_for(lambda: [b for b in self.bindings(aor)
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
