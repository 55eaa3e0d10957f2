"""End-to-end harness for Medius: real processes on 127.0.0.1, stdlib only.

A Cluster writes configs into a temp dir, starts the registrar, optionally the routing
service (examples/local/routing.json unless told otherwise), optionally a media-transcoder,
and the signaling gateway as subprocesses on free ports (addresses passed through the
MEDIUS_* environment overrides), waits for their ports and gRPC health, and stops them by
PID. Cluster(calls=True) starts the whole call path with the trunks on 127.0.0.11-13.
Logs stay in the temp dir; E2ETestCase prints them when a test fails. SIPp runs with a
timeout (run_sipp waits for it; SippProcess runs it in the background, e.g. as a trunk, and
parses its message trace); a tiny UDP SIP client (SipClient) covers what SIPp cannot do
(stale nonces, replayed nonce-counts, malformed requests); LoopbackCapture counts RTP on lo.
Kamailio (deploy/kamailio/kamailio.cfg), Prometheus (deploy/prometheus/) and RedisServer run
the real Debian programs; LoadBalancedTestCase is the base of the tests with two gateways
behind Kamailio, TwoWorkerCluster a calls cluster with two media workers.

Environment: MEDIUS_BIN_DIR (the build's bin/ dir, required), MEDIUS_E2E_KEEP=1 keeps the
temp dirs, SIPP (path of sipp, default "sipp").
"""

import datetime
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
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
        # SIPp, the internal clients here, cannot do SRTP: "optional" instead of the
        # gateway's default "required" (as in examples/local/gateway.json). A test that needs
        # another policy overrides it with Cluster(gateway_extra={"media": {...}}).
        "media": {"internal_srtp": "optional"},
        "retry_after_seconds": 5,
        # A test's calls left at teardown end within Service.stop's 10 s (test_drain.py
        # sets a longer limit through MEDIUS_DRAIN_TIMEOUT_SECONDS).
        "drain": {"timeout_seconds": 5},
        "user_agent": "Medius/0.1",
    }


MAKE_CERTS = os.path.join(ROOT, "deploy", "certs", "make-certs.sh")


def make_certs(directory):
    """The throwaway CA and certificates of deploy/certs/make-certs.sh in directory."""
    subprocess.run([MAKE_CERTS, directory], check=True, stdout=subprocess.DEVNULL)
    return directory


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

# What AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer print when they find
# something. A service's log holding one of these fails the test even if the process
# exited 0 (a recoverable report, or options that do not halt).
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: "
                              r"|WARNING: (AddressSanitizer|LeakSanitizer)|SUMMARY: \w+Sanitizer")


def sanitizer_env(env):
    """env with leak detection forced on for an instrumented service: the caller's
    ASAN_OPTIONS are kept, detect_leaks=1 appended (ASan reads its options left to right,
    the last one wins), so no caller can switch LeakSanitizer off for the e2e services.
    Without MEDIUS_SANITIZED=1 the environment is unchanged."""
    if os.environ.get("MEDIUS_SANITIZED") != "1":
        return env
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "detect_leaks=1"
    ubsan = env.get("UBSAN_OPTIONS", "")
    env["UBSAN_OPTIONS"] = (ubsan + ":" if ubsan else "") + "print_stacktrace=1"
    return env


def sanitizer_reports(text):
    """The lines of a service's log that are sanitizer reports ([] when clean)."""
    return [line for line in text.splitlines() if SANITIZER_REPORT.search(line)]


class Service:
    """One child process started by the harness; stopped by its PID only."""

    def __init__(self, name, argv, env, log_path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        full_env = dict(os.environ)
        full_env.update(env)
        sanitizer_env(full_env)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=full_env)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL, by PID (a crash: no drain, no goodbye); waits for the exit. Cleanup
        then takes its -9 as expected (self.killed)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.killed = True
        self.proc.wait()

    killed = False

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


# Where the reference topology's trunks live in call tests: one loopback host each, so a
# SIPp playing a trunk binds the trunk's own address (the gateway accepts a trunk's INVITE
# only from that host and port).
TRUNK_HOSTS = {"pstn-primary": "127.0.0.11", "pstn-backup": "127.0.0.12", "pbx": "127.0.0.13"}


def wait_until(predicate, timeout, what):
    """predicate()'s first truthy value within timeout seconds (polled every 100 ms), or
    AssertionError naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError("not within %.1fs: %s (last: %r)" % (timeout, what, last))


def read_cdr(path):
    """A CDR file's lines as dicts ([] while it does not exist)."""
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except OSError:
        return []


def _merge(into, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


class Cluster:
    """A registrar, (optionally) the routing service and (optionally) a signaling gateway
    on free 127.0.0.1 ports.

    calls=True starts the whole call path: registrar, routing (a copy of
    examples/local/routing.json whose trunks sit on TRUNK_HOSTS at free ports, see
    self.trunk_address; trunk_overrides={"pstn-primary": {"failover_timeout_ms": 1500}}
    changes a trunk's keys), a media-transcoder (free gRPC/metrics ports, a free window of
    RTP ports on 127.0.0.1) and the gateway wired to all three, with a CDR file in the temp
    dir (self.cdr_file) and a short trunk keepalive. gateway_extra is merged into the
    generated gateway.json (e.g. {"media": {"media_timeout_ms": 2000}}, or
    {"media": {"internal_srtp": "required"}}: the default here is "optional", SIPp has no
    SRTP)."""

    def __init__(self, algorithms=("MD5",), nonce_ttl=300, with_gateway=True, name="cluster",
                 with_routing=False, gateway_uses_routing=False, with_media=False, calls=False,
                 trunk_overrides=None, gateway_extra=None, keepalive_interval_ms=1000,
                 tls=None, trunk_tls=None, users=None):
        # tls: a dict turns on the internal side's SIP over TLS (internal.tls) on
        # self.tls_port, with the throwaway certificates of deploy/certs/make-certs.sh in
        # self.certs_dir (gateway.pem/.key as the server's, ca.pem, client.pem/.key); the
        # dict's keys are merged into the block, "{certs}" in a value is self.certs_dir.
        # trunk_tls: likewise for the trunk side (trunk.tls on self.trunk_tls_port, the
        # gateway's certificate; the dict must name its "ca", the trunks' CA).
        # users: the registrar's users (harness.test_users() when None), passwords
        # user_password()'s.
        self.users = users
        self.tls = tls
        self.trunk_tls = trunk_tls
        self.calls = calls
        if calls:
            with_routing = gateway_uses_routing = with_media = True
        self.with_media = with_media
        self.trunk_overrides = trunk_overrides or {}
        self.gateway_extra = gateway_extra or {}
        self.keepalive_interval_ms = keepalive_interval_ms
        self.media = None
        self.trunk_ports = {}
        self.dir = tempfile.mkdtemp(prefix="medius-e2e-%s-" % name)
        self.certs_dir = os.path.join(self.dir, "certs")
        if tls is not None or trunk_tls is not None:
            make_certs(self.certs_dir)
        # Extra environment of the gateway (a test pointing at example files).
        self.gateway_env_extra = {}
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
        self.tls_port = free_port()
        self.trunk_tls_port = free_port()
        with open(os.path.join(self.dir, "registrar.json"), "w") as f:
            json.dump(registrar_config(self.registrar_grpc, self.registrar_metrics,
                                       self.algorithms, self.nonce_ttl, self.users), f, indent=2)
        with open(os.path.join(self.dir, "gateway.json"), "w") as f:
            json.dump(self._with_tls(_merge(gateway_config(
                self.gateway_grpc, self.gateway_metrics, self.internal_port, self.trunk_port,
                self.registrar_grpc), self.gateway_extra)), f, indent=2)
        if self.with_media:
            self.media_grpc = free_port()
            self.media_metrics = free_port()
            # RTP ports below free_port's range (20000-32000), a random window of 200.
            base = 10000 + 200 * random.SystemRandom().randrange(0, 49)
            self.media_port_min, self.media_port_max = base, base + 199
            self.media_config = os.path.join(self.dir, "media.json")
            with open(os.path.join(ROOT, "examples", "local", "media.json")) as f:
                media = json.load(f)
            media["service"]["grpc_listen"] = "127.0.0.1:%d" % self.media_grpc
            media["service"]["metrics_listen"] = "127.0.0.1:%d" % self.media_metrics
            media["port_range"] = {"min": self.media_port_min, "max": self.media_port_max}
            with open(self.media_config, "w") as f:
                json.dump(media, f, indent=2)
        if self.calls:
            self.write_call_configs()

    def write_call_configs(self):
        """routing-calls.json (trunks on TRUNK_HOSTS, free ports) and gateway-calls.json."""
        self.trunk_ports = {name: free_port(host) for name, host in TRUNK_HOSTS.items()}
        with open(os.path.join(ROOT, "examples", "local", "routing.json")) as f:
            routing = json.load(f)
        for trunk in routing["trunks"]:
            trunk["address"] = self.trunk_address(trunk["name"])
            trunk.update(self.trunk_overrides.get(trunk["name"], {}))
        self.routing_config = os.path.join(self.dir, "routing-calls.json")
        with open(self.routing_config, "w") as f:
            json.dump(routing, f, indent=2)
        self.cdr_file = os.path.join(self.dir, "cdr.jsonl")
        gateway = gateway_config(self.gateway_grpc, self.gateway_metrics, self.internal_port,
                                 self.trunk_port, self.registrar_grpc)
        gateway["routing"] = {"address": "127.0.0.1:%d" % self.routing_grpc, "timeout_ms": 1000}
        # Short rounds so trunks come up fast; many failures to go down, so a trunk whose
        # SIPp is between two scenarios (or deliberately silent) stays routable.
        gateway["trunk_keepalive"] = {"interval_ms": self.keepalive_interval_ms,
                                      "failures_to_down": 100, "successes_to_up": 1}
        gateway["media"].update({"workers": ["127.0.0.1:%d" % self.media_grpc],
                                 "timeout_ms": 1000})
        gateway["calls"] = {"cdr_file": self.cdr_file}
        _merge(gateway, self.gateway_extra)
        self._with_tls(gateway)
        self.gateway_config = os.path.join(self.dir, "gateway-calls.json")
        with open(self.gateway_config, "w") as f:
            json.dump(gateway, f, indent=2)

    def _with_tls(self, gateway):
        for side, settings, port in (("internal", self.tls, self.tls_port),
                                     ("trunk", self.trunk_tls, self.trunk_tls_port)):
            if settings is None:
                continue
            block = {"listen": "sips:127.0.0.1:%d" % port,
                     "cert": os.path.join(self.certs_dir, "gateway.pem"),
                     "key": os.path.join(self.certs_dir, "gateway.key")}
            for key, value in settings.items():
                block[key] = value.format(certs=self.certs_dir) if isinstance(value, str) \
                    else value
            gateway.setdefault(side, {})["tls"] = block
        return gateway

    def trunk_address(self, name):
        return "%s:%d" % (TRUNK_HOSTS[name], self.trunk_ports[name])

    # The same addresses as in the files, through the documented overrides.
    def registrar_env(self):
        return {"MEDIUS_GRPC_LISTEN": "127.0.0.1:%d" % self.registrar_grpc,
                "MEDIUS_METRICS_LISTEN": "127.0.0.1:%d" % self.registrar_metrics}

    def routing_env(self):
        return {"MEDIUS_GRPC_LISTEN": "127.0.0.1:%d" % self.routing_grpc,
                "MEDIUS_METRICS_LISTEN": "127.0.0.1:%d" % self.routing_metrics,
                "MEDIUS_REGISTRAR_ADDRESS": "127.0.0.1:%d" % self.registrar_grpc}

    def media_env(self):
        return {"MEDIUS_GRPC_LISTEN": "127.0.0.1:%d" % self.media_grpc,
                "MEDIUS_METRICS_LISTEN": "127.0.0.1:%d" % self.media_metrics,
                "MEDIUS_MEDIA_PORT_MIN": str(self.media_port_min),
                "MEDIUS_MEDIA_PORT_MAX": str(self.media_port_max)}

    def gateway_env(self):
        env = self._gateway_env()
        if self.with_media:
            env["MEDIUS_MEDIA_WORKERS"] = "127.0.0.1:%d" % self.media_grpc
        if self.calls:
            env["MEDIUS_CDR_FILE"] = self.cdr_file
        env.update(self.gateway_env_extra)
        return env

    def _gateway_env(self):
        return {"MEDIUS_GRPC_LISTEN": "127.0.0.1:%d" % self.gateway_grpc,
                "MEDIUS_METRICS_LISTEN": "127.0.0.1:%d" % self.gateway_metrics,
                "MEDIUS_INTERNAL_LISTEN": "sip:127.0.0.1:%d" % self.internal_port,
                "MEDIUS_TRUNK_LISTEN": "sip:127.0.0.1:%d" % self.trunk_port,
                # Used only by a gateway config with an internal.tls block.
                "MEDIUS_INTERNAL_TLS_LISTEN": "sips:127.0.0.1:%d" % self.tls_port,
                "MEDIUS_TRUNK_TLS_LISTEN": "sips:127.0.0.1:%d" % self.trunk_tls_port,
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
                if self.with_media:
                    self.start_media()
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

    def start_media(self):
        self.media = self._start("media-transcoder", self.media_config, self.media_env(),
                                 self.media_grpc)

    @property
    def media_address(self):
        return "127.0.0.1:%d" % self.media_grpc

    @property
    def gateway_address(self):
        return "127.0.0.1:%d" % self.gateway_grpc

    def stop_routing(self):
        if self.routing is not None:
            return self.routing.stop()
        return None

    def stop_media(self):
        if self.media is not None:
            return self.media.stop()
        return None

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
        """Stops everything; returns the exit codes that were not 0 (but -9 of a service a
        test killed with Service.kill), and every service
        whose log holds a sanitizer report whatever its exit code (the logs are kept and
        printed when there are any)."""
        codes = self.stop()
        killed = {"%s.%d" % (svc.name, i) for i, svc in enumerate(self.services) if svc.killed}
        bad = {name: code for name, code in codes.items()
               if code != 0 and not (name in killed and code == -signal.SIGKILL)}
        for i, svc in enumerate(self.services):
            reports = sanitizer_reports(svc.log_text())
            if reports:
                bad["%s.%d" % (svc.name, i)] = "sanitizer: " + " | ".join(reports[:3])
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

    def sessions(self):
        """The media worker's sessions (medctl sessions --json)."""
        return json.loads(self.medctl("sessions", "--media", self.media_address, "--json").stdout)

    def active_calls(self):
        """The gateway's calls (medctl calls --json: GatewayAdmin.ListCalls)."""
        return json.loads(self.medctl("calls", "--gateway", self.gateway_address,
                                      "--json").stdout)

    def cdr_records(self):
        """The CDR file's lines as dicts ([] while it does not exist)."""
        return read_cdr(self.cdr_file)

    def gateway_rss_kib(self):
        with open("/proc/%d/status" % self.gateway.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for the gateway")

    def metrics(self, which):
        port = {"registrar": self.registrar_metrics, "routing": self.routing_metrics,
                "gateway": self.gateway_metrics,
                "media": getattr(self, "media_metrics", None)}[which]
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            return r.read().decode()

    def sipp(self, scenario, *args, transport="u1", timeout=120, csv=None, calls=None,
             rate=None, name=None):
        return run_sipp(os.path.join(SCENARIOS, scenario), "127.0.0.1:%d" % self.internal_port,
                        self.dir, *args, transport=transport, timeout=timeout, csv=csv,
                        calls=calls, rate=rate, name=name)


    def gateway_replica(self, gateway_id):
        """A further signaling gateway of a calls cluster (same config file, its own ports,
        gateway_id and CDR file through the env overrides), not started yet: see
        GatewayReplica. Not in self.services: the test stops it (a killed one exits -9)."""
        return GatewayReplica(self, gateway_id)


class GatewayReplica:
    """One more gateway beside a Cluster's own (e.g. two behind the load balancer). Keeps
    its ports across start()/kill()/start(), so a restarted gateway is the same dispatcher
    destination. internal_port is its internal side, cdr_file its CDRs."""

    def __init__(self, cluster, gateway_id):
        self.cluster = cluster
        self.gateway_id = gateway_id
        self.grpc = free_port()
        self.metrics_port = free_port()
        self.internal_port = free_port()
        self.trunk_port = free_port()
        self.cdr_file = os.path.join(cluster.dir, "cdr-%s.jsonl" % gateway_id)
        self.service = None
        self.runs = 0

    def env(self):
        env = dict(self.cluster.gateway_env())
        env.update({"MEDIUS_GRPC_LISTEN": "127.0.0.1:%d" % self.grpc,
                    "MEDIUS_METRICS_LISTEN": "127.0.0.1:%d" % self.metrics_port,
                    "MEDIUS_INTERNAL_LISTEN": "sip:127.0.0.1:%d" % self.internal_port,
                    "MEDIUS_TRUNK_LISTEN": "sip:127.0.0.1:%d" % self.trunk_port,
                    "MEDIUS_GATEWAY_ID": self.gateway_id,
                    "MEDIUS_CDR_FILE": self.cdr_file})
        return env

    def start(self):
        self.runs += 1
        log = os.path.join(self.cluster.dir, "signaling-gateway-%s.%d.log"
                           % (self.gateway_id, self.runs))
        self.service = Service("signaling-gateway-%s" % self.gateway_id,
                               [os.path.join(bin_dir(), "signaling-gateway"), "--config",
                                self.cluster.gateway_config], self.env(), log)
        wait_tcp("127.0.0.1", self.grpc, 30, self.service.proc)
        deadline = time.monotonic() + 30
        while self.cluster.medctl("health", "--target", "127.0.0.1:%d" % self.grpc,
                                  check=False).returncode != 0:
            if not self.service.alive() or time.monotonic() > deadline:
                raise RuntimeError("gateway %s not healthy:\n%s"
                                   % (self.gateway_id, self.service.log_text()[-4000:]))
            time.sleep(0.1)
        wait_tcp("127.0.0.1", self.internal_port, 20, self.service.proc)
        return self

    def kill(self):
        """SIGKILL, by PID: a crashed gateway (no drain, no goodbye)."""
        if self.service is not None:
            self.service.kill()
        return self.service.stop() if self.service is not None else None

    def stop(self):
        return self.service.stop() if self.service is not None else None

    @property
    def sip_uri(self):
        return "sip:127.0.0.1:%d" % self.internal_port

    def cdr_records(self):
        return read_cdr(self.cdr_file)

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                    timeout=5) as r:
            return r.read().decode()

    def log_text(self):
        return self.service.log_text() if self.service is not None else ""


class TwoWorkerCluster(Cluster):
    """A calls cluster with a second media worker (self.media2, same config, its own ports
    and a 200-port RTP window next to the first's); every gateway (the cluster's and its
    replicas) uses both workers."""

    def pick_ports(self):
        super().pick_ports()
        self.media2_grpc = free_port()
        self.media2_metrics = free_port()
        # A 200-port RTP window next to the first worker's (10000-19999, see pick_ports).
        base = self.media_port_min + 200 if self.media_port_min < 19600 \
            else self.media_port_min - 200
        self.media2_port_min, self.media2_port_max = base, base + 199

    @property
    def media2_address(self):
        return "127.0.0.1:%d" % self.media2_grpc

    def media2_env(self):
        env = self.media_env()
        env.update({"MEDIUS_GRPC_LISTEN": self.media2_address,
                    "MEDIUS_METRICS_LISTEN": "127.0.0.1:%d" % self.media2_metrics,
                    "MEDIUS_MEDIA_PORT_MIN": str(self.media2_port_min),
                    "MEDIUS_MEDIA_PORT_MAX": str(self.media2_port_max)})
        return env

    def start_media(self):
        super().start_media()
        self.media2 = self._start("media-transcoder", self.media_config, self.media2_env(),
                                  self.media2_grpc)

    def gateway_env(self):
        env = super().gateway_env()
        env["MEDIUS_MEDIA_WORKERS"] = "%s,%s" % (self.media_address, self.media2_address)
        return env

    def media2_metrics_text(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.media2_metrics,
                                    timeout=5) as r:
            return r.read().decode()


class Kamailio:
    """Kamailio (Debian's `kamailio`) running deploy/kamailio/kamailio.cfg as the SIP load
    balancer: on host:port (UDP and TCP), dispatcher set 1 = the given gateway SIP URIs (in
    that order: with Call-ID hashing the order decides which gateway a Call-ID reaches),
    in the foreground (-DD -E, log to a file in workdir), a kamcmd control socket in
    workdir. Stopped by its PID."""

    CONFIG = os.path.join(ROOT, "deploy", "kamailio", "kamailio.cfg")

    def __init__(self, workdir, gateways, host="127.0.0.1", port=None, name="kamailio"):
        self.host = host
        self.port = port or free_port(host)
        self.dir = os.path.join(workdir, "%s-%d" % (name, self.port))
        os.makedirs(self.dir, exist_ok=True)
        self.list_file = os.path.join(self.dir, "dispatcher.list")
        with open(self.list_file, "w") as f:
            f.write("# setid destination\n")
            for uri in gateways:
                f.write("1 %s\n" % uri)
        self.ctl = "unix:" + os.path.join(self.dir, "ctl.sock")
        self.log_path = os.path.join(self.dir, "kamailio.log")
        self.argv = [shutil.which("kamailio") or "/usr/sbin/kamailio", "-f", self.CONFIG,
                     "-DD", "-E", "-P", os.path.join(self.dir, "kamailio.pid"),
                     "-w", self.dir, "-Y", self.dir,
                     "-A", "LB_ADDR=%s" % host, "-A", "LB_PORT=%d" % self.port,
                     "-A", 'DISPATCHER_LIST="%s"' % self.list_file,
                     "-A", 'CTL_SOCKET="%s"' % self.ctl, "-A", "LB_CHILDREN=2",
                     "-A", "WITH_DEBUG"]
        self.service = Service(name, self.argv, {}, self.log_path)
        wait_tcp(host, self.port, 30, self.service.proc)
        deadline = time.monotonic() + 30
        while self.kamcmd("core.version", check=False).returncode != 0:
            if not self.service.alive() or time.monotonic() > deadline:
                raise RuntimeError("kamailio control socket not up:\n" + self.log_text())
            time.sleep(0.1)

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def kamcmd(self, *args, check=True):
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        rc = subprocess.run([kamcmd, "-s", self.ctl] + list(args), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=20)
        if check and rc.returncode != 0:
            raise AssertionError("kamcmd %s failed: %s%s" % (" ".join(args), rc.stdout,
                                                             rc.stderr))
        return rc

    def destinations(self):
        """{uri: flags} of dispatcher set 1 ("AP": active and probed, "IP": inactive)."""
        text = self.kamcmd("dispatcher.list").stdout
        return dict(re.findall(r"URI:\s*(\S+)\s+FLAGS:\s*(\S+)", text))

    def log_text(self):
        return self.service.log_text()

    def stop(self):
        return self.service.stop()


class RedisServer:
    """Debian's redis-server on a free 127.0.0.1 port, in the foreground, no persistence,
    in workdir. Stopped (or killed) by its PID."""

    def __init__(self, workdir):
        self.port = free_port()
        self.dir = os.path.join(workdir, "redis-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.service = Service("redis-server", [
            shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir],
            {}, os.path.join(self.dir, "redis.log"))
        wait_tcp("127.0.0.1", self.port, 30, self.service.proc)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        return self.service.stop()


PROMETHEUS_DIR = os.path.join(ROOT, "deploy", "prometheus")


def prometheus_config(targets, interval="1s"):
    """deploy/prometheus/prometheus.yml with other targets: the same jobs (targets must name
    every job: {job_name: ["host:port", ...]}), the same rule files (alerts.yml, unchanged),
    scrapes and rule evaluations every `interval`."""
    import yaml  # python3-yaml; only the tests that run Prometheus need it
    with open(os.path.join(PROMETHEUS_DIR, "prometheus.yml")) as f:
        config = yaml.safe_load(f)
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert sorted(jobs) == sorted(targets), "jobs of prometheus.yml changed: %s" % jobs
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": list(targets[job["job_name"]])}]
    # A busy machine (CI builds beside) may take a while to answer a scrape.
    config["global"].update({"scrape_interval": interval, "scrape_timeout": interval,
                             "evaluation_interval": interval})
    config["rule_files"] = [os.path.join(PROMETHEUS_DIR, name) for name in config["rule_files"]]
    return config


class Prometheus:
    """Debian's prometheus on a free 127.0.0.1 port with the given config (a dict, e.g.
    prometheus_config(...)), its TSDB in a temp dir under workdir."""

    def __init__(self, workdir, config):
        import yaml
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="prometheus-", dir=workdir)
        path = os.path.join(self.dir, "prometheus.yml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + path, "--storage.tsdb.path=" + self.dir + "/data",
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_tcp("127.0.0.1", self.port, 30, self.proc)
        wait_until(self.ready, 60, "prometheus ready (%s)" % self.log_path)

    def ready(self):
        """/-/ready answers 200 once the TSDB is open (503 before)."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port,
                                        timeout=5) as r:
                return r.status == 200
        except OSError:  # urllib.error.URLError is an OSError
            return False

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read().decode())
        except urllib.error.HTTPError as e:  # 400/422 carry the error as JSON
            return json.loads(e.read().decode())

    def query(self, expr):
        return self.api("query", query=expr)

    def targets(self):
        return self.api("targets")["data"]["activeTargets"]

    def firing(self):
        return [a for a in self.api("alerts")["data"]["alerts"] if a["state"] == "firing"]

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


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

    def messages(self, direction=None):
        """The SIP messages of the -trace_msg file (SippProcess runs write one), in order:
        [SipMessage]; direction "received" or "sent" narrows them."""
        out = []
        parts = re.split(r"^-{20,} (\S+ \S+)\s*$", self.file("messages.log"), flags=re.M)
        # [before, stamp1, chunk1, stamp2, chunk2, ...]
        for stamp, chunk in zip(parts[1::2], parts[2::2]):
            m = re.match(r"\s*\S+ message (received|sent)[^\n]*\n", chunk)
            if not m:
                continue
            text = chunk[m.end():].strip("\r\n")
            if not text.strip():
                continue
            message = SipMessage(m.group(1), text)
            try:
                message.time = datetime.datetime.strptime(
                    stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
            except ValueError:
                message.time = None
            if direction is None or message.direction == direction:
                out.append(message)
        return out

    def received(self, method_or_status):
        """Messages received: requests by method ("INVITE") or responses by status (180)."""
        return [m for m in self.messages("received") if m.matches(method_or_status)]

    def sent(self, method_or_status):
        return [m for m in self.messages("sent") if m.matches(method_or_status)]

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


class SipMessage:
    """One SIP message from a SIPp message trace."""

    def __init__(self, direction, text):
        self.direction = direction
        self.text = text.replace("\r\n", "\n")
        head, _, self.body = self.text.partition("\n\n")
        lines = head.split("\n")
        self.first_line = lines[0].strip()
        self.headers = []
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                self.headers.append((k.strip().lower(), v.strip()))
        parts = self.first_line.split(" ", 2)
        if self.first_line.startswith("SIP/2.0"):
            self.status, self.method, self.uri = int(parts[1]), None, None
        else:
            self.status, self.method, self.uri = None, parts[0], parts[1] if len(parts) > 1 else ""

    def matches(self, method_or_status):
        if isinstance(method_or_status, int):
            return self.status == method_or_status
        return self.method == method_or_status

    @property
    def uri_user(self):
        m = re.match(r"sips?:([^@;>]+)@", self.uri or "")
        return m.group(1) if m else None

    def all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def get(self, name):
        values = self.all(name)
        return values[0] if values else None

    @property
    def cseq_method(self):
        value = self.get("CSeq") or ""
        return value.split()[-1] if value else None

    def sdp_audio(self):
        """(address, port, direction) of the SDP body, or None."""
        if "m=audio" not in self.body:
            return None
        address = re.search(r"^c=IN IP4 (\S+)", self.body, re.M)
        port = re.search(r"^m=audio (\d+)", self.body, re.M)
        direction = re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", self.body, re.M)
        return (address.group(1) if address else None, int(port.group(1)),
                direction.group(1) if direction else "sendrecv")

    def __repr__(self):
        return "<%s %s>" % (self.direction, self.first_line)


_sipp_runs = [0]


class SippProcess:
    """A SIPp started in the background and waited for later: a trunk or device UAS, or a
    caller whose call must be in progress while the test does something else. Always
    traces its messages (-trace_msg), so a test can assert on what this SIPp saw.
    Stopped by its PID only."""

    def __init__(self, scenario, workdir, *args, local_ip="127.0.0.1", port=None,
                 media_port=None, target=None, transport="u1", timeout=60, calls=None,
                 rate=None, name=None, keys=None, auto_answer=True, rtp_echo=False,
                 duration_ms=None):
        _sipp_runs[0] += 1
        self.name = name or "%s-%d" % (os.path.splitext(os.path.basename(scenario))[0],
                                       _sipp_runs[0])
        self.workdir = workdir
        self.local_ip = local_ip
        self.port = port or free_port(local_ip)
        self.media_port = media_port or free_media_port(local_ip)
        path = scenario if os.path.isabs(scenario) else os.path.join(SCENARIOS, scenario)
        argv = [sipp_path()]
        if target:
            argv.append(target)
        argv += ["-sf", path, "-t", transport, "-i", local_ip, "-p", str(self.port),
                 "-mi", local_ip, "-mp", str(self.media_port), "-nostdin",
                 "-timeout", "%ds" % timeout, "-timeout_error",
                 "-trace_msg", "-message_file", os.path.join(workdir, self.name + "_messages.log"),
                 "-trace_err", "-error_file", os.path.join(workdir, self.name + "_errors.log"),
                 "-trace_logs", "-log_file", os.path.join(workdir, self.name + "_logs.log"),
                 "-trace_stat", "-stf", os.path.join(workdir, self.name + "_stat.csv"),
                 # A statistics row every second: finish() watches the call counters.
                 "-fd", "1"]
        all_keys = {"domain": DOMAIN, "caller": "sipp", "from_host": DOMAIN,
                    "ruri_host": DOMAIN}
        all_keys.update(keys or {})
        for key, value in all_keys.items():
            argv += ["-key", key, str(value)]
        if auto_answer:
            argv.append("-aa")  # OPTIONS keepalives (and INFO, NOTIFY, UPDATE) get 200
        if rtp_echo:
            argv.append("-rtp_echo")
        if duration_ms is not None:
            argv += ["-d", str(duration_ms)]
        if calls is not None:
            argv += ["-m", str(calls)]
        if rate is not None:
            argv += ["-r", str(rate)]
        argv += list(args)
        self.argv = argv
        self._out = open(os.path.join(workdir, self.name + ".stdout"), "wb")
        self._err = open(os.path.join(workdir, self.name + ".stderr"), "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, cwd=workdir)
        self.timeout = timeout

    @property
    def address(self):
        return "%s:%d" % (self.local_ip, self.port)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def wait(self, timeout=None):
        """Waits for the exit (kills it after timeout, default its own -timeout + 15 s)."""
        try:
            self.proc.wait(timeout if timeout is not None else self.timeout + 15)
        except subprocess.TimeoutExpired:
            self.stop()
        return self.result()

    def finish(self, timeout=15, calls=None):
        """Soft quit (SIGUSR1: SIPp takes no new calls, lets the running ones end, exits with 0
        when no call failed). For a UAS that must not count calls with -m: -aa answers
        OPTIONS keepalives as calls of their own, and they count toward -m.

        An OPTIONS keepalive answered by -aa also leaves a call of its own open, waiting for
        an INVITE until the global -timeout, and the soft quit waits for it. With `calls`
        (the calls the test expects this UAS to have ended), SIPp is stopped (SIGTERM: exit
        0 when no call failed, final statistics written) as soon as its statistics show that
        many calls ended, successful or failed; without, after `timeout`."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGUSR1)
        if calls is None:
            return self.wait(timeout)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            stats = self.stats()
            ended = (int(stats.get("SuccessfulCall(C)", "0") or 0) +
                     int(stats.get("FailedCall(C)", "0") or 0)) if stats else -1
            if ended >= calls:
                # The row was written before the last message of the call was perhaps
                # retransmitted: one more row's worth of time, then stop.
                time.sleep(1.1)
                return self.stop()
            time.sleep(0.2)
        return self.wait(max(0.0, deadline - time.monotonic()))

    def stats(self):
        """The last row of the -trace_stat file as {column: value} (cumulative counters are
        the columns ending in "(C)", e.g. "SuccessfulCall(C)", "FailedCall(C)")."""
        rows = [l for l in _read(os.path.join(self.workdir, self.name + "_stat.csv")).splitlines()
                if l.strip()]
        if len(rows) < 2:
            return {}
        head = rows[0].rstrip(";").split(";")
        last = rows[-1].rstrip(";").split(";")
        return dict(zip(head, last))

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.result()

    def result(self):
        for f in (self._out, self._err):
            if not f.closed:
                f.close()

        class _Done:
            pass
        done = _Done()
        done.returncode = self.proc.returncode
        done.stdout = _read(os.path.join(self.workdir, self.name + ".stdout"))
        done.stderr = _read(os.path.join(self.workdir, self.name + ".stderr"))
        return SippResult(self.argv, done, self.workdir, self.name)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def free_media_port(host="127.0.0.1"):
    """An even port p with p, p+1, p+2 and p+3 free on host (SIPp's -mp: audio RTP/RTCP,
    and the video pair its -rtp_echo also opens)."""
    for _ in range(200):
        port = free_port(host)
        if port % 2:
            continue
        ok = True
        for extra in (1, 2, 3):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port + extra))
            except OSError:
                ok = False
            finally:
                sock.close()
        if ok:
            for extra in (1, 2, 3):
                _given_ports.add(port + extra)
            return port
    raise RuntimeError("no free media port pair on %s" % host)


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


# ---------------------------------------------------------------- RTP on the wire

class LoopbackCapture:
    """Counts the RTP packets that cross the loopback interface while it runs: an AF_PACKET
    socket on "lo" (needs CAP_NET_RAW, i.e. root; tcpdump without tcpdump). Only UDP
    datagrams that look like RTP (version 2, payload type below 72 or above 76) to or
    from the given hosts are kept, as (time.time(), src, sport, dst, dport, payload_type,
    ssrc).
    A subclass that wants more of each packet overrides on_rtp().
    LoopbackCapture.available() says whether this machine allows it."""

    def __init__(self, hosts=None):
        self.hosts = set(hosts) if hosts else None
        self.packets = []
        self._stop = False
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def available():
        try:
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800)).close()
            return True
        except (OSError, AttributeError):
            return False

    def _run(self):
        while not self._stop:
            try:
                data, address = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if address[2] != socket.PACKET_HOST:  # each loopback packet shows twice
                continue
            frame = data[14:]  # the Ethernet header of lo
            if len(frame) < 28 or frame[9] != 17:
                continue
            ihl = (frame[0] & 0x0F) * 4
            src, dst = socket.inet_ntoa(frame[12:16]), socket.inet_ntoa(frame[16:20])
            if self.hosts and not (src in self.hosts or dst in self.hosts):
                continue
            sport, dport = struct.unpack("!HH", frame[ihl:ihl + 4])
            rtp = frame[ihl + 8:]
            if len(rtp) < 12 or rtp[0] >> 6 != 2:
                continue
            now = time.time()
            self.on_rtp(now, src, sport, dst, dport, rtp)
            payload_type = rtp[1] & 0x7F
            if 72 <= payload_type <= 76:  # RTCP
                continue
            ssrc = struct.unpack("!I", rtp[8:12])[0]
            self.packets.append((now, src, sport, dst, dport, payload_type, ssrc))

    def on_rtp(self, when, src, sport, dst, dport, rtp):
        """Called on the capture's thread for every UDP datagram to or from the hosts that
        looks like RTP (version 2), RTCP included, before it is counted: rtp is the UDP
        payload (bytes), `when` the time.time() it is counted with. Does nothing here; a
        subclass sets the attributes it fills before calling __init__ (the thread starts
        there)."""

    def stop(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()
        return self

    def count(self, src=None, dst=None, after=None):
        """Packets from src (host or (host, port)) to dst, seen after `after` (time.time())."""
        def match(want, host, port):
            if want is None:
                return True
            if isinstance(want, tuple):
                return (host, port) == want
            return host == want
        return sum(1 for t, sh, sp, dh, dp, _, _ in self.packets
                   if match(src, sh, sp) and match(dst, dh, dp) and (after is None or t > after))

    def flows(self):
        """{(src, sport, dst, dport): packets}."""
        out = {}
        for _, sh, sp, dh, dp, _, _ in self.packets:
            out[(sh, sp, dh, dp)] = out.get((sh, sp, dh, dp), 0) + 1
        return out


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


def ack_for(request_text, response):
    """The ACK of a non-2xx final response to an INVITE (RFC 3261 17.1.1.3): the INVITE's
    Request-URI, top Via (same branch), From, Call-ID and CSeq number, the response's To."""
    lines = request_text.split("\r\n")

    def header(name):
        return next(line for line in lines if line.lower().startswith(name.lower() + ":"))
    number = header("CSeq").split(":", 1)[1].split()[0]
    return "\r\n".join(["ACK %s SIP/2.0" % lines[0].split(" ")[1], header("Via"), header("From"),
                        "To: %s" % response.get("To"), header("Call-ID"), "CSeq: %s ACK" % number,
                        "Max-Forwards: 70", "Content-Length: 0", "", ""])


def proxy_authorization(user, password, response, method, uri, nc="00000001"):
    """A Proxy-Authorization value answering the first MD5 Proxy-Authenticate of a 407."""
    challenges = [parse_challenge(v) for v in response.all("Proxy-Authenticate")]
    challenge = next((c for c in challenges if c.get("algorithm", "MD5").upper() == "MD5"),
                     challenges[0])
    cnonce = secrets.token_hex(8)
    algorithm = challenge.get("algorithm", "MD5")
    digest = digest_response(user, password, method, uri, challenge["nonce"], nc, cnonce,
                             algorithm, realm=challenge.get("realm", REALM))
    value = ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
             'algorithm=%s, cnonce="%s", qop=auth, nc=%s'
             % (user, challenge.get("realm", REALM), challenge["nonce"], uri, digest, algorithm,
                cnonce, nc))
    if "opaque" in challenge:
        value += ', opaque="%s"' % challenge["opaque"]
    return value


class SipClient:
    """A minimal UDP SIP UAC for requests SIPp cannot express."""

    def __init__(self, target_port, host="127.0.0.1", local=("127.0.0.1", 0)):
        self.target = (host, target_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(local)
        self.host, self.port = self.sock.getsockname()
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

    def send_authenticated(self, build, user, password):
        """An INVITE (or other request) through the internal side's digest check:
        build(cseq, branch, extra_lines) gives the request text; a 407 is ACKed (an
        INVITE's) and the request sent again with Proxy-Authorization for user. Returns
        the final response (the 407 itself when the second try gets one too)."""
        text = build(1, "z9hG4bK" + secrets.token_hex(8), [])
        response = self.send_raw(text)
        if response is None or response.status != 407:
            return response
        method, uri = text.split(" ", 2)[:2]
        if method == "INVITE":
            self.sock.sendto(ack_for(text, response).encode(), self.target)
        auth = proxy_authorization(user, password, response, method, uri)
        text = build(2, "z9hG4bK" + secrets.token_hex(8), ["Proxy-Authorization: " + auth])
        return self.send_raw(text)

    def request(self, method, user="alice", contact=True, expires="3600", extra=(),
                authorization=None, contact_value=None, call_id=None, uri=None):
        self.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(8)
        uri = uri or "sip:%s" % DOMAIN
        lines = ["%s %s SIP/2.0" % (method, uri),
                 "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (self.host, self.port, branch),
                 "Max-Forwards: 70",
                 "From: <sip:%s@%s>;tag=%s" % (user, DOMAIN, secrets.token_hex(4)),
                 "To: <sip:%s@%s>" % (user, DOMAIN),
                 "Call-ID: %s" % (call_id or self.call_id),
                 "CSeq: %d %s" % (self.cseq, method)]
        if contact_value is not None:
            lines.append("Contact: %s" % contact_value)
        elif contact:
            lines.append("Contact: <sip:%s@%s:%d>" % (user, self.host, self.port))
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


def register_device(gateway_port, user, host, port, expires=3600, gateway_host="127.0.0.1"):
    """REGISTERs user with Contact sip:user@host:port from host:port itself (digest, MD5),
    so a SIPp UAS started afterwards on host:port is the registered device. The socket is
    closed before returning; the response (200 expected) is returned."""
    client = SipClient(gateway_port, host=gateway_host, local=(host, port))
    try:
        first = client.request("REGISTER", user=user, expires=str(expires))
        if first is None or first.status != 401:
            return first
        challenge = md5_challenge(first)
        return client.request("REGISTER", user=user, expires=str(expires),
                              authorization=client.authorization(user, user_password(user),
                                                                 challenge))
    finally:
        client.close()


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
                raise AssertionError("services did not exit cleanly on SIGTERM (or a "
                                     "sanitizer reported): %s" % bad)


class LoadBalancedTestCase(E2ETestCase):
    """Kamailio in front of two gateways of one calls cluster: the cluster's own ("gw-e2e",
    gw_a_uri) and the replica cls.gw_b ("gw-b"); the PBX trunk (127.0.0.13) is a SIPp UAS
    that answers every call and echoes RTP (cls.pbx). make_cluster() builds the (not yet
    started) cluster; a test starts Kamailio itself (self.lb, stopped in tearDown, which
    expects exit 0). A failing test also prints Kamailio's and gateway b's logs."""

    PBX = "pbx"

    @classmethod
    def make_cluster(cls):
        return Cluster(name="lb", calls=True)

    @classmethod
    def setUpClass(cls):
        cluster = cls.make_cluster()
        cls.cluster = cluster.start()
        cls.gw_b = None
        cls.pbx = None
        cls.lb = None
        try:
            cls.gw_b = cluster.gateway_replica("gw-b").start()
            cls.pbx = SippProcess(
                "uas_answer.xml", cluster.dir, local_ip=TRUNK_HOSTS[cls.PBX],
                port=cluster.trunk_ports[cls.PBX], rtp_echo=True, timeout=3600, name="pbx")
            wait_until(lambda: metric_value(
                cluster.metrics("routing"), "medius_routing_trunk_up", {"trunk": cls.PBX}) == 1.0,
                20, "pbx up in routing")
        except Exception:
            cls.tear_down_extras()
            cluster.dump_logs()
            cluster.cleanup()
            cls.cluster = None
            raise

    @classmethod
    def tear_down_extras(cls):
        """Stops the PBX and gateway b; gateway b's exit code (on SIGTERM; -9 when a test
        killed it)."""
        if cls.pbx is not None:
            cls.pbx.stop()
        return cls.gw_b.stop() if cls.gw_b is not None else 0

    def tearDown(self):
        if self.lb is not None:
            code = self.lb.stop()
            self.assertEqual(code, 0, "kamailio exited %s on SIGTERM" % code)

    def run(self, result=None):
        result = result or self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for name, text in (("kamailio", self.lb.log_text() if self.lb else ""),
                               ("gw-b", self.gw_b.log_text() if self.gw_b else "")):
                print("\n===== %s log =====\n%s" % (name, text[-20000:]), file=sys.stderr)
        return out

    @property
    def gw_a_uri(self):
        return "sip:127.0.0.1:%d" % self.cluster.internal_port

    def gateway_calls(self, port=None):
        """The calls in progress on gateway `port` (gRPC), or on both; a gateway that is
        down counts as none."""
        calls = []
        for p in ([port] if port else (self.cluster.gateway_grpc, self.gw_b.grpc)):
            rc = self.cluster.medctl("calls", "--gateway", "127.0.0.1:%d" % p, "--json",
                                     check=False)
            if rc.returncode == 0:
                calls += json.loads(rc.stdout).get("calls") or []
        return calls

    def lb_hops(self, since=0):
        """From the LB's log (WITH_DEBUG) after offset `since`: {Call-ID: [(method,
        "host:port")]}: where each INVITE was dispatched and each in-dialog request
        (ACK, BYE) was relayed."""
        hops = {}
        for kind, method, call_id, uri in re.findall(
                r"(dispatch|in-dialog) (\S+) Call-ID (\S+) to (\S+)", self.lb.log_text()[since:]):
            host = re.match(r"sips?:(?:[^@]*@)?([^;>]+)", uri).group(1)
            hops.setdefault(call_id, []).append((method, host))
        return hops


def main():
    unittest.main(verbosity=2)
