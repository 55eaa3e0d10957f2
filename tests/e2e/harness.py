"""End-to-end harness for Medius: real processes on 127.0.0.1, stdlib only.

A Cluster writes configs into a temp dir, starts the registrar, optionally the routing
service (examples/local/routing.json unless told otherwise) and the signaling gateway
as subprocesses on free ports (addresses passed through the MEDIUS_* environment
overrides), waits for their ports and gRPC health, and stops them by PID. Logs stay in the
temp dir; E2ETestCase prints them when a test fails. SIPp runs with a timeout; a tiny UDP
SIP client (SipClient) covers what SIPp cannot do (stale nonces, replayed nonce-counts,
malformed requests).

Environment: MEDIUS_BIN_DIR (the build's bin/ dir, required), MEDIUS_E2E_KEEP=1 keeps the
temp dirs, SIPP (path of sipp, default "sipp").
"""

import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOMAIN = "example.com"
REALM = "example.com"
SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")


def bin_dir():
    path = os.environ.get("MEDIUS_BIN_DIR")
    if not path:
        raise RuntimeError("MEDIUS_BIN_DIR is not set (the build's bin/ directory)")
    return path


def sipp_path():
    return os.environ.get("SIPP", shutil.which("sipp") or "sipp")


# ---------------------------------------------------------------- ports

_given_ports = set()


def free_port(host="127.0.0.1"):
    """A port free for both TCP and UDP on host (SIP listens on both).

    Chosen at random below the kernel's ephemeral range (32768-60999 on Linux), so that
    the client sockets of SIPp, gRPC and redis never take it between this check and the
    service's bind, and test processes running in parallel rarely pick the same one
    (Cluster.start retries with new ports when that happens)."""
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randrange(20000, 32000)
        if port in _given_ports:
            continue
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tcp.bind((host, port))
            udp.bind((host, port))
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()
        _given_ports.add(port)
        return port
    raise RuntimeError("no free port")


def wait_tcp(host, port, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before opening %s:%d"
                               % (proc.returncode, host, port))
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s:%d not open after %ss" % (host, port, timeout))


# ---------------------------------------------------------------- users and configs

def user_password(name):
    return {"alice": "secret-alice", "bob": "secret-bob"}.get(name, "pw-" + name)


def test_users(count=100):
    return ["user%03d" % i for i in range(count)] + ["alice", "bob"]


def ha1(username, password, algorithm="MD5", realm=REALM):
    h = hashlib.sha256 if algorithm.upper().startswith("SHA-256") else hashlib.md5
    return h(("%s:%s:%s" % (username, realm, password)).encode()).hexdigest()


def registrar_config(grpc_port, metrics_port, algorithms=("MD5",), nonce_ttl=300, users=None):
    users = users if users is not None else test_users()
    return {
        "service": {"grpc_listen": "127.0.0.1:%d" % grpc_port,
                    "metrics_listen": "127.0.0.1:%d" % metrics_port,
                    "log": {"level": "info"}},
        "domain": DOMAIN,
        "store": {"type": "memory"},
        "expiry": {"min_seconds": 60, "default_seconds": 3600, "max_seconds": 7200},
        "max_contacts_per_aor": 10,
        "sweep_interval_ms": 1000,
        "auth": {"required": True, "realm": REALM, "algorithms": list(algorithms),
                 "nonce_ttl_seconds": nonce_ttl},
        "users": [{"username": u, "aor": "sip:%s@%s" % (u, DOMAIN),
                   "ha1_md5": ha1(u, user_password(u), "MD5"),
                   "ha1_sha256": ha1(u, user_password(u), "SHA-256")} for u in users],
    }


def gateway_config(grpc_port, metrics_port, internal_port, trunk_port, registrar_port):
    return {
        "service": {"grpc_listen": "127.0.0.1:%d" % grpc_port,
                    "metrics_listen": "127.0.0.1:%d" % metrics_port,
                    "log": {"level": "info"}},
        "gateway_id": "gw-e2e",
        "domain": DOMAIN,
        "internal": {"listen": ["sip:127.0.0.1:%d" % internal_port]},
        "trunk": {"listen": ["sip:127.0.0.1:%d" % trunk_port]},
        "registrar": {"address": "127.0.0.1:%d" % registrar_port, "timeout_ms": 2000},
        "retry_after_seconds": 5,
        "user_agent": "Medius/0.1",
    }


def write_users_csv(path, users, password_of=user_password):
    """SIPp injection file: user;password;[authentication ...]. SIPp 3.6 cannot nest
    [fieldN] inside [authentication], but it parses an [authentication] keyword that
    comes from an injection field, so the third field carries the whole keyword."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for u in users:
            pw = password_of(u)
            f.write("%s;%s;[authentication username=%s password=%s]\n" % (u, pw, u, pw))
    return path


# ---------------------------------------------------------------- processes

class Service:
    """One child process started by the harness; stopped by its PID only."""

    def __init__(self, name, argv, env, log_path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        full_env = dict(os.environ)
        full_env.update(env)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=full_env)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM, wait, SIGKILL after timeout. Returns the exit code (-9 when it had to
        be killed). A service must exit 0 on SIGTERM: under ASan a leak at exit makes it
        non-zero, so E2ETestCase checks every code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class Cluster:
    """A registrar, (optionally) the routing service and (optionally) a signaling gateway
    on free 127.0.0.1 ports."""

    def __init__(self, algorithms=("MD5",), nonce_ttl=300, with_gateway=True, name="cluster",
                 with_routing=False, gateway_uses_routing=False):
        self.dir = tempfile.mkdtemp(prefix="medius-e2e-%s-" % name)
        self.algorithms = algorithms
        self.nonce_ttl = nonce_ttl
        self.registrar_config = os.path.join(self.dir, "registrar.json")
        self.gateway_config = os.path.join(self.dir, "gateway.json")
        # The reference topology's routing config; its addresses move through the env.
        self.routing_config = os.path.join(ROOT, "examples", "local", "routing.json")
        self.pick_ports()
        self.with_gateway = with_gateway
        self.with_routing = with_routing
        # The gateway probes the trunks routing lists (OPTIONS keepalive) and reports them
        # down when nothing answers. Only tests that ask for it connect the two; the
        # others' gateway points at a port where nothing listens (never at a routing
        # service of a cluster started by `./medius up`).
        self.gateway_uses_routing = gateway_uses_routing
        self.registrar = None
        self.routing = None
        self.gateway = None
        self.services = []

    def pick_ports(self):
        """Fresh free ports, written into the generated configs (a test may point the
        config paths at other files: the env overrides carry the ports anyway)."""
        self.registrar_grpc = free_port()
        self.registrar_metrics = free_port()
        self.routing_grpc = free_port()
        self.routing_metrics = free_port()
        self.no_routing_port = free_port()
        self.gateway_grpc = free_port()
        self.gateway_metrics = free_port()
        self.internal_port = free_port()
        self.trunk_port = free_port()
        with open(os.path.join(self.dir, "registrar.json"), "w") as f:
            json.dump(registrar_config(self.registrar_grpc, self.registrar_metrics,
                                       self.algorithms, self.nonce_ttl), f, indent=2)
        with open(os.path.join(self.dir, "gateway.json"), "w") as f:
            json.dump(gateway_config(self.gateway_grpc, self.gateway_metrics,
                                     self.internal_port, self.trunk_port,
                                     self.registrar_grpc), f, indent=2)

    # The same addresses as in the files, through the documented overrides.
    def registrar_env(self):
        return {"MEDIUS_GRPC_LISTEN": "127.0.0.1:%d" % self.registrar_grpc,
                "MEDIUS_METRICS_LISTEN": "127.0.0.1:%d" % self.registrar_metrics}

    def routing_env(self):
        return {"MEDIUS_GRPC_LISTEN": "127.0.0.1:%d" % self.routing_grpc,
                "MEDIUS_METRICS_LISTEN": "127.0.0.1:%d" % self.routing_metrics,
                "MEDIUS_REGISTRAR_ADDRESS": "127.0.0.1:%d" % self.registrar_grpc}

    def gateway_env(self):
        return {"MEDIUS_GRPC_LISTEN": "127.0.0.1:%d" % self.gateway_grpc,
                "MEDIUS_METRICS_LISTEN": "127.0.0.1:%d" % self.gateway_metrics,
                "MEDIUS_INTERNAL_LISTEN": "sip:127.0.0.1:%d" % self.internal_port,
                "MEDIUS_TRUNK_LISTEN": "sip:127.0.0.1:%d" % self.trunk_port,
                "MEDIUS_REGISTRAR_ADDRESS": "127.0.0.1:%d" % self.registrar_grpc,
                "MEDIUS_ROUTING_ADDRESS": "127.0.0.1:%d" % (
                    self.routing_grpc if self.gateway_uses_routing else self.no_routing_port)}

    def start(self, attempts=3):
        """Starts the services. A port taken by someone else between free_port() and the
        service's bind (tests run in parallel) makes the service exit: then everything
        is stopped and started again on new ports."""
        for attempt in range(1, attempts + 1):
            try:
                self.start_registrar()
                if self.with_routing:
                    self.start_routing()
                if self.with_gateway:
                    self.start_gateway()
                return self
            except Exception:
                # A bind failure ends the process (gRPC, SIP or metrics port).
                exited = any(not svc.alive() for svc in self.services)
                if not exited or attempt == attempts:
                    self.dump_logs()
                    self.stop()
                    raise
                self.stop()
                self.services = []
                self.pick_ports()
        return self

    def start_registrar(self):
        self.registrar = self._start("registrar", self.registrar_config, self.registrar_env(),
                                     self.registrar_grpc)

    def start_routing(self):
        self.routing = self._start("routing", self.routing_config, self.routing_env(),
                                   self.routing_grpc)

    @property
    def routing_address(self):
        return "127.0.0.1:%d" % self.routing_grpc

    def start_gateway(self):
        self.gateway = self._start("signaling-gateway", self.gateway_config, self.gateway_env(),
                                   self.gateway_grpc)
        wait_tcp("127.0.0.1", self.internal_port, 20, self.gateway.proc)

    def _start(self, name, config, env, grpc_port):
        log = os.path.join(self.dir, "%s.%d.log" % (name, len(self.services)))
        svc = Service(name, [os.path.join(bin_dir(), name), "--config", config], env, log)
        self.services.append(svc)
        wait_tcp("127.0.0.1", grpc_port, 30, svc.proc)
        deadline = time.monotonic() + 30
        while True:
            rc = self.medctl("health", "--target", "127.0.0.1:%d" % grpc_port, check=False)
            if rc.returncode == 0:
                return svc
            if not svc.alive() or time.monotonic() > deadline:
                raise RuntimeError("%s not healthy: %s %s" % (name, rc.stdout, rc.stderr))
            time.sleep(0.1)

    def stop_registrar(self):
        if self.registrar is not None:
            self.registrar.stop()

    def stop(self):
        """Stops every service (also those stopped before); {"name.N": exit code}."""
        codes = {}
        for i, svc in reversed(list(enumerate(self.services))):
            codes["%s.%d" % (svc.name, i)] = svc.stop()
        return codes

    def cleanup(self):
        """Stops everything; returns the exit codes that were not 0 (the logs are kept
        and printed when there are any)."""
        codes = self.stop()
        bad = {name: code for name, code in codes.items() if code != 0}
        if bad:
            self.dump_logs()
        elif not os.environ.get("MEDIUS_E2E_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return bad

    def dump_logs(self, out=sys.stderr):
        for svc in self.services:
            print("\n===== %s log (%s) =====" % (svc.name, svc.log_path), file=out)
            print(svc.log_text()[-20000:], file=out)
        out.flush()

    # ---- tools against this cluster

    def medctl(self, *args, check=True, timeout=30):
        argv = [os.path.join(bin_dir(), "medctl")] + list(args)
        rc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout)
        if check and rc.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s" % (" ".join(argv), rc.returncode,
                                                            rc.stdout, rc.stderr))
        return rc

    def registrations(self, aor=None):
        args = ["registrations", "--registrar", "127.0.0.1:%d" % self.registrar_grpc, "--json"]
        if aor:
            args.insert(1, aor)
        return json.loads(self.medctl(*args).stdout)

    def metrics(self, which):
        port = {"registrar": self.registrar_metrics, "routing": self.routing_metrics,
                "gateway": self.gateway_metrics}[which]
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            return r.read().decode()

    def sipp(self, scenario, *args, transport="u1", timeout=120, csv=None, calls=None,
             rate=None, name=None):
        return run_sipp(os.path.join(SCENARIOS, scenario), "127.0.0.1:%d" % self.internal_port,
                        self.dir, *args, transport=transport, timeout=timeout, csv=csv,
                        calls=calls, rate=rate, name=name)


def metric_value(text, name, labels=None):
    """Sum of the samples of `name` whose labels include `labels` (dict); None if absent."""
    total = None
    pattern = re.compile(r"^%s(\{([^}]*)\})?\s+(\S+)" % re.escape(name))
    for line in text.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if labels and any(have.get(k) != v for k, v in labels.items()):
            continue
        total = (total or 0.0) + float(m.group(3))
    return total


# ---------------------------------------------------------------- SIPp

class SippResult:
    def __init__(self, argv, proc, workdir, name):
        self.argv = argv
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.workdir = workdir
        self.name = name

    def file(self, suffix):
        path = os.path.join(self.workdir, "%s_%s" % (self.name, suffix))
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    @property
    def log_lines(self):
        return [l for l in self.file("logs.log").splitlines() if l.strip()]

    def describe(self):
        return ("sipp exit %s\ncommand: %s\nstdout:\n%s\nstderr:\n%s\nerrors:\n%s"
                % (self.returncode, " ".join(self.argv), self.stdout[-6000:],
                   self.stderr[-3000:], self.file("errors.log")[-6000:]))


_sipp_runs = [0]


def run_sipp(scenario, target, workdir, *args, transport="u1", timeout=120, csv=None,
             calls=None, rate=None, name=None):
    _sipp_runs[0] += 1
    name = name or "%s-%d" % (os.path.splitext(os.path.basename(scenario))[0], _sipp_runs[0])
    argv = [sipp_path(), target, "-sf", scenario, "-t", transport,
            "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()),
            "-key", "domain", DOMAIN, "-auth_uri", DOMAIN, "-nostdin",
            "-timeout", "%ds" % max(timeout - 10, 5), "-timeout_error",
            "-trace_err", "-error_file", os.path.join(workdir, name + "_errors.log"),
            "-trace_logs", "-log_file", os.path.join(workdir, name + "_logs.log")]
    if csv:
        argv += ["-inf", csv]
    if calls is not None:
        argv += ["-m", str(calls)]
    if rate is not None:
        argv += ["-r", str(rate)]
    argv += list(args)
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, cwd=workdir)
    return SippResult(argv, proc, workdir, name)


# ---------------------------------------------------------------- raw SIP over UDP

class SipResponse:
    def __init__(self, raw):
        self.raw = raw
        head = raw.split("\r\n\r\n", 1)[0]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers = []
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                self.headers.append((k.strip().lower(), v.strip()))

    def all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def get(self, name):
        values = self.all(name)
        return values[0] if values else None


def parse_challenge(value):
    """Parameters of a 'Digest k=v, k="v"' header value."""
    assert value.lower().startswith("digest "), value
    params = {}
    for m in re.finditer(r'(\w+)=("([^"]*)"|[^,\s]+)', value[7:]):
        params[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
    return params


def digest_response(username, password, method, uri, nonce, nc, cnonce, algorithm="MD5",
                    qop="auth", realm=REALM):
    h = (lambda s: hashlib.sha256(s.encode()).hexdigest()) \
        if algorithm.upper().startswith("SHA-256") else \
        (lambda s: hashlib.md5(s.encode()).hexdigest())
    a1 = h("%s:%s:%s" % (username, realm, password))
    a2 = h("%s:%s" % (method, uri))
    return h("%s:%s:%s:%s:%s:%s" % (a1, nonce, nc, cnonce, qop, a2))


class SipClient:
    """A minimal UDP SIP UAC for requests SIPp cannot express."""

    def __init__(self, target_port, host="127.0.0.1"):
        self.target = (host, target_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.call_id = secrets.token_hex(8) + "@127.0.0.1"
        self.cseq = 0

    def close(self):
        self.sock.close()

    def send_raw(self, text, timeout=5.0):
        """Sends one request and returns its final response (skips 1xx), or None on timeout."""
        self.sock.sendto(text.encode(), self.target)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            response = SipResponse(data.decode(errors="replace"))
            if response.status >= 200:
                return response

    def request(self, method, user="alice", contact=True, expires="3600", extra=(),
                authorization=None, contact_value=None, call_id=None, uri=None):
        self.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(8)
        uri = uri or "sip:%s" % DOMAIN
        lines = ["%s %s SIP/2.0" % (method, uri),
                 "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport" % (self.port, branch),
                 "Max-Forwards: 70",
                 "From: <sip:%s@%s>;tag=%s" % (user, DOMAIN, secrets.token_hex(4)),
                 "To: <sip:%s@%s>" % (user, DOMAIN),
                 "Call-ID: %s" % (call_id or self.call_id),
                 "CSeq: %d %s" % (self.cseq, method)]
        if contact_value is not None:
            lines.append("Contact: %s" % contact_value)
        elif contact:
            lines.append("Contact: <sip:%s@127.0.0.1:%d>" % (user, self.port))
        if expires is not None:
            lines.append("Expires: %s" % expires)
        if authorization:
            lines.append("Authorization: %s" % authorization)
        lines += list(extra)
        lines += ["User-Agent: medius-e2e-python", "Content-Length: 0", "", ""]
        return self.send_raw("\r\n".join(lines))

    def authorization(self, user, password, challenge, nc="00000001", cnonce=None,
                      method="REGISTER", uri=None, algorithm=None):
        uri = uri or "sip:%s" % DOMAIN
        cnonce = cnonce or secrets.token_hex(8)
        algorithm = algorithm or challenge.get("algorithm", "MD5")
        response = digest_response(user, password, method, uri, challenge["nonce"], nc, cnonce,
                                   algorithm, realm=challenge.get("realm", REALM))
        value = ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
                 'algorithm=%s, cnonce="%s", qop=auth, nc=%s'
                 % (user, challenge.get("realm", REALM), challenge["nonce"], uri, response,
                    algorithm, cnonce, nc))
        if "opaque" in challenge:
            value += ', opaque="%s"' % challenge["opaque"]
        return value


def md5_challenge(response):
    for value in response.all("WWW-Authenticate"):
        params = parse_challenge(value)
        if params.get("algorithm", "MD5").upper() == "MD5":
            return params
    raise AssertionError("no MD5 challenge in:\n" + response.raw)


# ---------------------------------------------------------------- unittest glue

class E2ETestCase(unittest.TestCase):
    """Prints the cluster's logs after a failing test. Subclasses set cls.cluster."""

    cluster = None

    def run(self, result=None):
        result = result or self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before and self.cluster is not None:
            self.cluster.dump_logs()
        return out

    @classmethod
    def tearDownClass(cls):
        if cls.cluster is not None:
            bad = cls.cluster.cleanup()
            cls.cluster = None
            if bad:
                raise AssertionError("services did not exit cleanly on SIGTERM: %s" % bad)


def main():
    unittest.main(verbosity=2)
