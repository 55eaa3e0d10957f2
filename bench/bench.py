#!/usr/bin/env python3
"""./medius bench: Medius against Kamailio and rtpengine, in the same run, on this machine.

Every row runs Medius and then its peer on the same scenario, one after the other, and
reports both and their ratio (Medius / peer). Everything it starts runs on 127.0.0.x ports
it picks and is stopped by PID at the end. Writes <out>/<UTC time>.json, a Markdown table
(<UTC time>.md, also printed) and PNG plots (matplotlib) into bench/results/ (or --out).

Rows (docs/performance.md, "./medius bench"):
  calls      highest calls/s with zero failed calls (ramp, then bisection; SIPp UAC ->
             system -> SIPp UAS, short calls, media anchored, no RTP) and CPU us per call
             of all the system's processes at one fixed rate. Peer: Kamailio stateful
             proxy with record-routing and topos, plus rtpengine over ng
             (bench/peers/kamailio-proxy.cfg)
  register   REGISTER/s with digest (401, then credentials) and CPU us per registration.
             Peer: Kamailio registrar + auth, in-memory usrloc (kamailio-registrar.cfg)
  relay      RTP packets/s per core of relay CPU, plain RTP and SRTP<->RTP (bench/media_load,
             --peer medius / --peer rtpengine, rtpengine userspace)
  transcode  calls per core, PCMU<->G.722 / Opus / G.729 (bench/media_load --peer medius /
             --peer rtpengine: rtpengine userspace, --num-threads=1 (one poller thread
             receives, decodes and encodes, like the worker's workers: 1) and
             --media-num-threads=1 (its send timer thread sends the transcoded packets), CPU
             of all threads of both; rtpengine transcodes through its ng codec dictionary
             (mask A's codec, transcode to B's); each side must receive its own codec and
             hear the other side's tone, or the run has no figure)
  latency    INVITE->100 and INVITE->180 p50/p99 at the fixed rate of the calls row; and,
             from the relay and transcode runs (no extra run), the media added latency p50/p99
             in us (one way, sending peer's socket -> receiving peer's socket, every packet of
             the measured window, both directions): relay RTP<->RTP and SRTP<->RTP at 200
             streams (the largest count when 200 is not run), paired by a packet index in the
             payload; each transcoded path at the calls its calls-per-core figure came from,
             8 probe calls sending a tone loud for 100 ms every 500 ms: each decoded loud
             onset paired with the departure of the onset that caused it
  memory     memory (PSS) per active call, calls held at once after the fixed-rate run;
             per registration (distinct users registered once each, PSS growth)
  soak       optional (--soak [MINUTES], 30), after the other rows, Medius only: the calls
             row's scenario for MINUTES at half the calls row's highest clean rate of this
             run (or --rate N). Start figures after a minute's warm-up at the rate, end
             figures after the last call ended, both at idle 35 s after the calls and
             sessions were gone: memory growth (anonymous memory of the 4 services; PSS and
             RSS beside it) per 100,000 calls, open fds per service (/proc/PID/fd, must not
             change), media sessions and gateway calls in progress (medctl and their gauges,
             must equal the start), failed calls; memory and fds sampled every minute (JSON,
             <time>-soak.png). With --check a soak whose
             fds, calls or sessions did not come back fails the run

  bench.py [--quick | --smoke] [--rows calls,register,relay,transcode,latency,memory]
           [--soak [MINUTES] [--rate N]]
           [--target HOST:PORT --rate N [--number 2200]] [--out DIR] [--bin-dir DIR]

--target measures a running deployment (a gateway's internal side, or a load balancer in
front of it) at a bounded rate: only the calls and latency rows, no peer, no CPU figures.
--check exits non-zero unless every row has a number or an explicit reason (the smoke test)
and the soak, when run, passed.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402
import bench_calls  # noqa: E402  (BenchCluster, Uas, cpu_seconds, last_stats, pct, ...)

ROWS = ("calls", "register", "relay", "transcode", "latency", "memory")
CALLER_HOST = bench_calls.CALLER_HOST          # 127.0.0.21, exempt from the flood guard
PEER_PROXY_HOST = "127.0.0.41"                 # Kamailio proxy
PEER_UAS_HOST = "127.0.0.42"                   # the peer run's SIPp UAS
PEER_REGISTRAR_HOST = "127.0.0.51"             # Kamailio registrar
REGISTER_HOST = "127.0.0.52"                   # SIPp registering (both runs)
SCENARIO = os.path.join(HERE, "scenarios", "uac_setup.xml")
PEERS = os.path.join(HERE, "peers")

# Sizes per mode. step_s: seconds of arrivals per ramp step; steps: most ramp steps per
# system; budget_s: no new ramp step after this many seconds per system; fixed_s: seconds of
# the fixed-rate run (CPU per call, latency). Full: ~12 minutes when nothing fails, within
# 20 when the ramps fail and wait for SIPp's timeouts.
PRESETS = {
    "smoke": {"bindings": 200, "binding_rate": 100, "call_start": 5, "call_steps": 1, "call_step_s": 2, "call_ms": 200,
              "call_fixed_s": 2, "mem_calls": 10, "call_budget_s": 60, "reg_budget_s": 30, "reg_start": 20, "reg_steps": 1, "reg_step_s": 2,
              "reg_fixed_s": 2, "relay_sessions": [10], "relay_paths": ["relay-rtp"],
              "media_warmup": 1, "media_s": 2, "transcode_paths": ["pcmu-g722"],
              "transcode_sessions": 10},
    "quick": {"bindings": 1000, "binding_rate": 250, "call_start": 20, "call_steps": 3, "call_step_s": 3, "call_ms": 500,
              "call_fixed_s": 3, "mem_calls": 50, "call_budget_s": 40, "reg_budget_s": 20, "reg_start": 200, "reg_steps": 3, "reg_step_s": 2,
              "reg_fixed_s": 2, "relay_sessions": [20], "relay_paths": ["relay-rtp",
                                                                        "relay-srtp-rtp"],
              "media_warmup": 1, "media_s": 2,
              "transcode_paths": ["pcmu-g722", "pcmu-opus", "pcmu-g729"],
              "transcode_sessions": 10},
    "full": {"bindings": 10000, "binding_rate": 500, "call_start": 50, "call_steps": 7, "call_step_s": 10, "call_ms": 1000,
             "call_fixed_s": 20, "mem_calls": 1000, "call_budget_s": 200, "reg_budget_s": 90, "reg_start": 500, "reg_steps": 7, "reg_step_s": 5,
             "reg_fixed_s": 10, "relay_sessions": [50, 200, 1000],
             "relay_paths": ["relay-rtp", "relay-srtp-rtp"], "media_warmup": 3, "media_s": 10,
             "transcode_paths": ["pcmu-g722", "pcmu-opus", "pcmu-g729"],
             "transcode_sessions": 100},
}
MAX_CALL_RATE = 2000
MAX_REG_RATE = 20000


def log(*args):
    print("==>", *args, flush=True)


# ---------------------------------------------------------------- processes and CPU

def tree_pids(pid):
    """pid and all its descendants (Kamailio forks its workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_of(pids):
    """utime+stime seconds of these processes and all their descendants."""
    total = 0.0
    for pid in pids:
        for p in tree_pids(pid):
            try:
                total += bench_calls.cpu_seconds(p)
            except (OSError, IndexError, ValueError):
                pass  # exited meanwhile
    return total


class Daemon:
    """A peer process (rtpengine, Kamailio) started here; stopped by its PID."""

    def __init__(self, name, argv, workdir):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(workdir, name + ".log")
        self.service = harness.Service(name, argv, {}, self.log_path)

    @property
    def pid(self):
        return self.service.pid

    def stop(self):
        return self.service.stop()


def start_rtpengine(workdir, port_min, port_max):
    binary = shutil.which("rtpengine") or "/usr/bin/rtpengine"
    if not os.access(binary, os.X_OK):
        raise PeerUnavailable("rtpengine not installed (Debian package rtpengine-daemon)")
    ng = harness.free_port()
    d = Daemon("rtpengine", [binary, "--config-file=none", "--foreground", "--log-stderr",
                             "--table=-1", "--interface=127.0.0.1",
                             "--listen-ng=127.0.0.1:%d" % ng, "--port-min=%d" % port_min,
                             "--port-max=%d" % port_max, "--num-threads=2", "--log-level=3",
                             "--delete-delay=0"], workdir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not d.service.alive():
            raise PeerUnavailable("rtpengine exited at start (%s)" % d.log_path)
        if subprocess.run(["ss", "-Hlun", "src 127.0.0.1:%d" % ng], capture_output=True,
                          text=True).stdout.strip():
            return d, ng
        time.sleep(0.1)
    d.stop()
    raise PeerUnavailable("rtpengine did not open its ng port")


def start_kamailio(workdir, config, host, extra_defines):
    binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
    if not os.access(binary, os.X_OK):
        raise PeerUnavailable("kamailio not installed (Debian package kamailio)")
    port = harness.free_port(host)
    name = os.path.splitext(os.path.basename(config))[0]
    kdir = os.path.join(workdir, name)
    os.makedirs(kdir, exist_ok=True)
    ctl = os.path.join(kdir, "ctl.sock")
    argv = [binary, "-f", config, "-DD", "-E", "-P", os.path.join(kdir, "kamailio.pid"),
            "-w", kdir, "-Y", kdir, "-A", "PEER_ADDR=%s" % host, "-A", "PEER_PORT=%d" % port,
            "-A", 'CTL_SOCKET="unix:%s"' % ctl, "-A", "PEER_CHILDREN=%d" % os.cpu_count(),
            # Shared memory as an operator sizes it for load (the default 64 MB runs out
            # within a minute at a few hundred calls/s: tm keeps its transactions
            # there, and Kamailio then answers 500 and crashes); only touched pages count in
            # the memory rows.
            "-m", str(KAMAILIO_SHM_MB), "-M", str(KAMAILIO_PKG_MB)]
    for key, value in extra_defines.items():
        argv += ["-A", '%s="%s"' % (key, value)]
    d = Daemon(name, argv, kdir)
    deadline = time.monotonic() + 20
    while not os.path.exists(ctl):
        if not d.service.alive() or time.monotonic() > deadline:
            d.stop()
            raise PeerUnavailable("kamailio did not start with %s: %s"
                                  % (os.path.basename(config),
                                     d.service.log_text()[-600:].strip().replace("\n", " | ")))
        time.sleep(0.1)
    time.sleep(0.3)
    return d, "%s:%d" % (host, port)


KAMAILIO_SHM_MB = 1024  # -m: shared memory of the peer Kamailio
KAMAILIO_PKG_MB = 16    # -M: private memory per Kamailio process


class PeerUnavailable(Exception):
    pass


# ---------------------------------------------------------------- SIPp runs

def rtt_by_name(workdir):
    """{timer name: sorted ms} from SIPp's -trace_rtt files (Date_ms;response_time_ms;rtd_no,
    the last column holding the timer's name)."""
    out = {}
    for name in os.listdir(workdir):
        if not name.endswith("_rtt.csv"):
            continue
        for line in harness._read(os.path.join(workdir, name)).splitlines():
            parts = line.strip().rstrip(";").split(";")
            if len(parts) >= 3:
                try:
                    out.setdefault(parts[2], []).append(float(parts[1]))
                except ValueError:
                    pass  # header
    return {k: sorted(v) for k, v in out.items()}


def run_sipp_step(argv, workdir, expected, pids, timeout, paced_s=None, tail_s=0.0):
    """Runs SIPp to its end; CPU of pids (trees) over the run, the stat file's counters.
    paced_s: the seconds the arrivals should take at the asked rate (count / rate); a step
    is clean only if SIPp also kept that pace, i.e. it ended within 15 % of paced_s plus
    tail_s (the last call's own length) and 1.5 s of start and finish: a step that
    completes every call but at half the asked rate did not reach that rate."""
    os.makedirs(workdir, exist_ok=True)
    cpu_before = cpu_of(pids) if pids else None
    started = time.monotonic()
    with open(os.path.join(workdir, "stdout"), "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=workdir)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    elapsed = time.monotonic() - started
    cpu = cpu_of(pids) - cpu_before if pids else None
    stats = bench_calls.last_stats(workdir)
    ok = int(stats.get("SuccessfulCall(C)", 0) or 0)
    failed = int(stats.get("FailedCall(C)", 0) or 0)
    kept_up = paced_s is None or elapsed <= paced_s * 1.15 + tail_s + 1.5
    return {"rc": rc, "ok": ok, "failed": failed, "expected": expected, "kept_up": kept_up,
            "clean": rc == 0 and failed == 0 and ok == expected and kept_up,
            "elapsed_s": round(elapsed, 2),
            "cpu_s": cpu, "cpu_us_per": (1e6 * cpu / ok) if (cpu is not None and ok) else None,
            "argv": " ".join(argv)}


def bound_note(r, results):
    """Marks a "highest rate" figure whose ramp never failed: the steps ran out first, so
    it is a lower bound (shown as ">= N"), and so is any ratio with it."""
    for key in ("medius", "peer"):
        history = (results.get(key) or {}).get("history") or []
        if history and all(step["clean"] for step in history):
            r["lower_bound"].append(key)
    if r["lower_bound"]:
        r["conditions"] += ("; >= : no step failed before the ramp's steps ran out, the "
                            "figure is a lower bound")
    return r


def ramp(run_step, start, steps, limit, budget_s):
    """Highest rate with a clean step: doubles from start until a step fails, then bisects
    between the last clean and the first failed rate; at most `steps` steps, and no new
    step once budget_s seconds have gone (what keeps a full run within 20 minutes)."""
    good, bad, rate, history = 0, None, start, []
    deadline = time.monotonic() + budget_s
    for _ in range(steps):
        if history and time.monotonic() > deadline:
            log("  time budget of this ramp (%d s) used: stopping at %d/s" % (budget_s, good))
            break
        step = run_step(rate)
        step["rate"] = rate
        history.append(step)
        log("  %d/s: %d ok, %d failed of %d in %.1f s%s" % (
            rate, step["ok"], step["failed"], step["expected"], step.get("elapsed_s", 0),
            "" if step["clean"] else "  (not clean%s)" % (
                "" if step.get("kept_up", True) else ": SIPp could not keep the pace")))
        if step["clean"]:
            good = rate
            nxt = min(limit, rate * 2) if bad is None else (good + bad) // 2
        else:
            bad = rate
            nxt = (good + bad) // 2
        if nxt <= good or (bad is not None and bad - good <= max(1, good // 10)) or nxt == rate:
            break
        rate = nxt
    return good, history


# ---------------------------------------------------------------- systems under test

class MediusCalls:
    name = "Medius"

    def __init__(self, workdir, opts, uas_timeout=7200):
        self.workdir = workdir
        self.uas_timeout = uas_timeout  # s: the SIPp UAS's own -timeout (a soak is long)
        # auth.calls off: the peer authenticates no INVITE either (same scenario for both).
        self.cluster = bench_calls.BenchCluster(
            (40000, 49999), name="bench-calls", calls=True,
            gateway_extra={"auth": {"calls": "off"},
                           "security": {"flood": {"exempt": [CALLER_HOST]}}})
        self.uas = None

    def start(self):
        self.cluster.start()
        self.uas = bench_calls.Uas(harness.TRUNK_HOSTS["pbx"], self.cluster.trunk_ports["pbx"],
                                   os.path.join(self.workdir, "medius-uas"),
                                   self.uas_timeout)
        harness.wait_until(lambda: harness.metric_value(
            self.cluster.metrics("routing"), "medius_routing_trunk_up", {"trunk": "pbx"}) == 1.0,
            30, "the pbx trunk up in routing")
        self.target = "127.0.0.1:%d" % self.cluster.internal_port
        self.ruri_host = harness.DOMAIN
        self.pids = [s.pid for s in self.cluster.services]

    def idle(self):
        bench_calls.wait_idle(self.cluster, 30)

    def rss_kib(self):
        return sum(rss_kib(p) for p in self.pids)

    def stop(self):
        if self.uas is not None:
            self.uas.stop()
        bad = self.cluster.cleanup()
        if bad:
            log("Medius services exited badly: %s (logs in %s)" % (bad, self.cluster.dir))


class PeerCalls:
    name = "Kamailio+rtpengine"

    def __init__(self, workdir, opts):
        self.workdir = workdir
        self.daemons = []
        self.uas = None
        self.redis = None

    def start(self):
        modules = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
        if not os.path.exists(modules + "topos.so"):
            raise PeerUnavailable("Kamailio's topos module is missing")
        if not os.path.exists(modules + "topos_redis.so"):
            raise PeerUnavailable("Kamailio's topos_redis module is missing (Debian package "
                                  "kamailio-redis-modules)")
        if not shutil.which("redis-server"):
            raise PeerUnavailable("redis-server not installed (topos's storage)")
        rtp, ng = start_rtpengine(self.workdir, 50000, 59999)
        self.daemons.append(rtp)
        # topos keeps each dialog's and transaction's stripped headers in Redis, with their
        # own expiry: its CPU and memory are the peer's too.
        self.redis = harness.RedisServer(self.workdir)
        kam, address = start_kamailio(
            self.workdir, os.path.join(PEERS, "kamailio-proxy.cfg"), PEER_PROXY_HOST,
            {"RTPENGINE_SOCK": "udp:127.0.0.1:%d" % ng,
             "TOPOS_REDIS": "name=tps;addr=127.0.0.1;port=%d" % self.redis.port})
        self.daemons.append(kam)
        uas_port = harness.free_port(PEER_UAS_HOST)
        self.uas = bench_calls.Uas(PEER_UAS_HOST, uas_port, os.path.join(self.workdir, "peer-uas"),
                                   7200)
        self.target = address
        self.ruri_host = "%s:%d" % (PEER_UAS_HOST, uas_port)
        self.pids = [d.pid for d in self.daemons] + [self.redis.service.proc.pid]

    def idle(self):
        time.sleep(1)

    def rss_kib(self):
        return sum(rss_kib(p) for pid in self.pids for p in tree_pids(pid))

    def stop(self):
        if self.uas is not None:
            self.uas.stop()
        for d in reversed(self.daemons):
            d.stop()
        if self.redis is not None:
            self.redis.stop()


class Target:
    """A deployment someone else runs (--target): no processes of ours, no CPU."""
    name = "target"

    def __init__(self, address):
        self.target = address
        self.ruri_host = harness.DOMAIN
        self.pids = []

    def start(self):
        pass

    def idle(self):
        time.sleep(1)

    def stop(self):
        pass


def pss_of(pid):
    """Proportional set size of one process, KiB (/proc/PID/smaps_rollup); 0 when gone."""
    return memory_of(pid)["pss_kib"]


def pss_kib(pids):
    """Proportional set size of these processes and their descendants, KiB (smaps_rollup):
    memory shared between Kamailio's processes is counted once, not once per process."""
    return sum(pss_of(p) for pid in pids for p in tree_pids(pid))


def hold_step(system, workdir, calls, rate):
    """`calls` calls set up at `rate` and held until all are up at once; the memory of the
    system's processes (PSS) before and at its peak, per concurrent call."""
    hold_ms = int((calls / float(rate) + 3) * 1000)
    before = pss_kib(system.pids)
    done = {}
    worker = threading.Thread(target=lambda: done.update(step=call_step(
        system, workdir, rate, calls / float(rate), hold_ms, "2200")), daemon=True)
    worker.start()
    peak = before
    while worker.is_alive():
        peak = max(peak, pss_kib(system.pids))
        worker.join(0.5)
    step = done.get("step")
    if not step:
        raise RuntimeError("the hold run did not finish")
    step["pss_before_kib"], step["pss_peak_kib"] = before, peak
    step["kib_per_call"] = (peak - before) / float(calls) if step["clean"] else None
    return step


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def call_step(system, workdir, rate, seconds, call_ms, number, with_pids=True, rtt=True,
              step_dir=None, slack_s=30):
    """`rate` calls/s for `seconds` of arrivals, calls of call_ms, to `number`. rtt: SIPp's
    response times of every call (step["rtt"]); step_dir: where SIPp writes (its stat file
    can be read while it runs); slack_s: what SIPp's -timeout allows beyond the arrivals."""
    calls = max(1, int(rate * seconds))
    step_dir = step_dir or tempfile.mkdtemp(prefix="calls-%d-" % rate, dir=workdir)
    extra = ["-s", number, "-m", str(calls), "-r", str(rate), "-d", str(call_ms),
             "-l", str(max(50, int(rate * (call_ms / 1000.0 + 5) * 2))),
             "-timeout", "%ds" % int(seconds + call_ms / 1000.0 + slack_s), "-timeout_error",
             "-recv_timeout", "10000"]
    if rtt:
        extra += ["-trace_rtt", "-rtt_freq", "1"]
    extra += ["-key", "caller", "alice", "-key", "from_host", harness.DOMAIN,
              "-key", "ruri_host", system.ruri_host, "-key", "domain", harness.DOMAIN]
    argv = bench_calls.sipp_argv(SCENARIO, CALLER_HOST, harness.free_port(CALLER_HOST),
                                 harness.free_media_port(CALLER_HOST), step_dir, extra,
                                 target=system.target)
    system.idle()
    step = run_sipp_step(argv, step_dir, calls, system.pids if with_pids else [],
                         seconds + call_ms / 1000.0 + slack_s + 30,
                         paced_s=calls / float(rate), tail_s=call_ms / 1000.0)
    step["rtt"] = rtt_by_name(step_dir) if rtt else {}
    return step


def latency_figures(step):
    """{"trying": {"p50", "p99", "samples"}, "ringing": ..., "setup": ...} from a step's
    response times (the timers of bench/scenarios/uac_setup.xml)."""
    out = {}
    for name in ("trying", "ringing", "setup"):
        values = step.get("rtt", {}).get(name, [])
        if values:
            out[name] = {"p50": bench_calls.pct(values, 50), "p99": bench_calls.pct(values, 99),
                         "samples": len(values)}
    return out


class MediusRegistrar:
    name = "Medius"

    def __init__(self, workdir, opts, users=None):
        self.cluster = harness.Cluster(algorithms=("MD5",), name="bench-register", users=users,
                                       gateway_extra={"security": {"flood": {
                                           "exempt": [REGISTER_HOST]}}})

    def start(self):
        self.cluster.start()
        self.target = "127.0.0.1:%d" % self.cluster.internal_port
        self.pids = [s.pid for s in self.cluster.services]

    def stop(self):
        bad = self.cluster.cleanup()
        if bad:
            log("Medius services exited badly: %s" % bad)


class PeerRegistrar:
    name = "Kamailio"

    def __init__(self, workdir, opts):
        self.workdir = workdir
        self.daemon = None

    def start(self):
        self.daemon, self.target = start_kamailio(
            self.workdir, os.path.join(PEERS, "kamailio-registrar.cfg"), PEER_REGISTRAR_HOST, {})
        self.pids = [self.daemon.pid]

    def stop(self):
        if self.daemon is not None:
            self.daemon.stop()


def register_step(system, workdir, csv, port, rate, seconds):
    count = max(1, int(rate * seconds))
    step_dir = tempfile.mkdtemp(prefix="register-%d-" % rate, dir=workdir)
    argv = [harness.sipp_path(), system.target, "-sf",
            os.path.join(harness.SCENARIOS, "register.xml"), "-t", "u1", "-i", REGISTER_HOST,
            "-p", str(port), "-mp", str(harness.free_port(REGISTER_HOST)),
            "-key", "domain", harness.DOMAIN, "-auth_uri", harness.DOMAIN,
            "-key", "expires", "3600", "-inf", csv, "-m", str(count), "-r", str(rate),
            "-l", "500", "-nostdin", "-timeout", "%ds" % int(seconds + 30), "-timeout_error",
            "-trace_err", "-error_file", os.path.join(step_dir, "errors.log"),
            "-trace_stat", "-stf", os.path.join(step_dir, "stat.csv"), "-fd", "1"]
    step = run_sipp_step(argv, step_dir, count, system.pids, seconds + 60,
                         paced_s=count / float(rate))
    step["achieved_per_s"] = round(step["ok"] / step["elapsed_s"], 1) if step["elapsed_s"] else 0
    return step


# ---------------------------------------------------------------- rows

def row(name, metric, unit, better, medius=None, peer=None, peer_reason=None,
        medius_reason=None, conditions=""):
    ratio = None
    if medius and peer:  # no ratio with a zero (e.g. a latency below SIPp's clock step)
        ratio = medius / peer
    return {"row": name, "metric": metric, "unit": unit, "better": better, "medius": medius,
            "peer": peer, "ratio": ratio, "lower_bound": [],
            "medius_unavailable": medius_reason,
            "peer_unavailable": peer_reason if peer is None else None,
            "conditions": conditions}


def run_pair(make_medius, make_peer, body, workdir):
    """body(system) for Medius then the peer; ({"Medius": ..., "peer": ...}, peer reason)."""
    results, reasons = {}, {}
    for key, make in (("medius", make_medius), ("peer", make_peer)):
        if make is None:
            continue
        system = None
        try:
            system = make(workdir, None)
            log("starting %s" % system.name)
            system.start()
            results[key] = body(system)
        except PeerUnavailable as e:
            reasons[key] = "%s: %s" % ("peer unavailable" if key == "peer" else "unavailable", e)
        except Exception as e:  # a broken run is reported in its row, never hidden
            reasons[key] = "run failed: %s" % (str(e).splitlines() or ["?"])[0][:300]
            log("%s failed: %s" % (key, e))
        finally:
            if system is not None:
                try:
                    system.stop()
                except Exception as e:
                    log("stopping %s: %s" % (key, e))
    return results, reasons


def calls_rows(opts, p, workdir, want_latency, want_memory=False):
    rows, plots = [], {}
    if opts.target:
        def body(system):
            step = call_step(system, workdir, opts.rate, p["call_fixed_s"], p["call_ms"],
                             opts.number, with_pids=False)
            return {"fixed": step}
        results, reasons = run_pair(lambda w, o: Target(opts.target), None, body, workdir)
        fixed = results.get("medius", {}).get("fixed")
        why = "peer unavailable: a --target run measures one system"
        cond = "target %s, %d calls/s asked for %d s, calls of %d ms" % (
            opts.target, opts.rate, p["call_fixed_s"], p["call_ms"])
        rows.append(row("calls", "calls without failure at the asked rate", "calls", "higher",
                        medius=fixed["ok"] if fixed and fixed["clean"] else None,
                        medius_reason=None if fixed and fixed["clean"] else reasons.get(
                            "medius", "not measured: failed calls at %d/s" % opts.rate),
                        peer_reason=why, conditions=cond))
        if want_latency:
            rows += latency_rows({"medius": fixed}, {"medius": reasons.get("medius"),
                                                     "peer": why}, cond)
        return rows, {"calls_ramp": {}, "target_step": fixed}

    ramps = {}

    def ramp_body(system):
        best, history = ramp(lambda r: call_step(system, workdir, r, p["call_step_s"],
                                                 p["call_ms"], "2200"),
                             p["call_start"], p["call_steps"], MAX_CALL_RATE,
                             p["call_budget_s"])
        return {"max": best, "history": history, "system": system}

    # Both systems stay up between the ramp and the fixed-rate run, so ramp first for both
    # inside one body, then the common fixed rate needs both maxima: two passes.
    log("calls: ramp of Medius, then of Kamailio+rtpengine")
    results, reasons = run_pair(MediusCalls, PeerCalls, lambda s: strip(ramp_body(s)), workdir)
    maxima = [r["max"] for r in results.values() if r["max"]]
    fixed_rate = max(1, min(maxima) // 2) if maxima else max(1, p["call_start"] // 2)
    log("calls: fixed rate %d/s (half the lower of the maxima) for CPU per call and latency"
        % fixed_rate)

    def fixed_body(system):
        step = call_step(system, workdir, fixed_rate, p["call_fixed_s"], p["call_ms"], "2200")
        out = {"fixed": step}
        if want_memory:
            rate = max(fixed_rate, min(100, max(5, p["mem_calls"] // 10)))
            log("  memory: %d calls held at once (set up at %d/s)" % (p["mem_calls"], rate))
            out["hold"] = hold_step(system, workdir, p["mem_calls"], rate)
        return out
    fixed, fixed_reasons = run_pair(MediusCalls, PeerCalls, fixed_body, workdir)
    for key in ("medius", "peer"):
        if key not in reasons and key in fixed_reasons:
            reasons[key] = fixed_reasons[key]
    cond = ("SIPp UAC 127.0.0.21 -> system -> SIPp UAS, calls of %d ms with SDP, no RTP; "
            "ramp from %d/s, %d s of arrivals per step, at most %d steps; Medius: the 4 "
            "services, auth.calls off; peer: Kamailio %s (tm, rr, topos on Redis) + "
            "rtpengine userspace (ng)" % (p["call_ms"], p["call_start"], p["call_step_s"],
                                          p["call_steps"], kamailio_version()))
    m, pr = results.get("medius"), results.get("peer")
    rows.append(bound_note(row(
        "calls", "highest call setup rate with zero failed calls", "calls/s", "higher",
        medius=m["max"] if m else None, peer=pr["max"] if pr else None,
        medius_reason=reasons.get("medius"), peer_reason=reasons.get("peer"), conditions=cond),
        results))
    fm, fp = fixed.get("medius", {}).get("fixed"), fixed.get("peer", {}).get("fixed")
    (vm, rm), (vp, rp) = per_op(fm, reasons.get("medius"), "call"), per_op(
        fp, reasons.get("peer"), "call")
    rows.append(row("calls", "CPU per call, all the system's processes", "us", "lower",
                    medius=vm, peer=vp, medius_reason=rm, peer_reason=rp,
                    conditions="%d calls/s for %d s; utime+stime from /proc of every process "
                               "the bench started for that system, per successful call%s"
                               % (fixed_rate, p["call_fixed_s"],
                                  failures_note({"Medius": fm, "peer": fp}))))
    if want_latency:
        rows += latency_rows({"medius": fm, "peer": fp}, reasons,
                             "at %d calls/s (half the lower maximum); SIPp -trace_rtt, every call"
                             % fixed_rate)
    if want_memory:
        hm, hp = fixed.get("medius", {}).get("hold"), fixed.get("peer", {}).get("hold")

        def kib(step, key):
            if reasons.get(key):
                return None, reasons[key]
            if not step or step.get("kib_per_call") is None:
                return None, "not measured: not every held call was set up"
            return step["kib_per_call"], None
        (vm, rm), (vp, rp) = kib(hm, "medius"), kib(hp, "peer")
        rows.append(row("memory", "memory per active call (%d calls up at once)"
                        % p["mem_calls"], "KiB", "lower", medius=vm, peer=vp,
                        medius_reason=rm, peer_reason=rp,
                        conditions="growth of the PSS (/proc/PID/smaps_rollup) of every "
                                   "process of the system, from idle to the peak while the "
                                   "calls are held, divided by the calls; Kamailio's shared "
                                   "memory is preallocated, so only the pages it touches count"))
    ramps = {k: v["history"] for k, v in results.items()}
    return rows, {"calls_ramp": ramps, "max": {k: v["max"] for k, v in results.items()},
                  "fixed": {"medius": fm, "peer": fp}, "fixed_rate": fixed_rate,
                  "hold": {k: v.get("hold") for k, v in fixed.items()}}


def per_op(step, reason, what):
    """(CPU us per operation of a fixed-rate step, reason when there is none)."""
    if reason:
        return None, reason
    if not step:
        return None, "not measured: no run"
    if not step["ok"]:
        return None, "not measured: no successful %s at the fixed rate" % what
    if not step["cpu_s"]:
        return None, "not measured: too little CPU used to measure (a longer run is needed)"
    return step["cpu_us_per"], None


def failures_note(steps):
    notes = ["%s: %d failed, %d missing of %d" % (k, s["failed"],
                                                   max(0, s["expected"] - s["ok"] - s["failed"]),
                                                   s["expected"])
             for k, s in steps.items() if s and not s["clean"]]
    return ("; NOT CLEAN at the fixed rate (%s)" % ", ".join(notes)) if notes else ""


def strip(result):
    result.pop("system", None)
    return result


def latency_rows(steps, reasons, cond):
    rows = []
    lat = {k: latency_figures(v) if v else {} for k, v in steps.items()}
    for which, label in (("trying", "INVITE -> 100"), ("ringing", "INVITE -> 180")):
        for q in ("p50", "p99"):
            values = {k: lat.get(k, {}).get(which, {}).get(q) for k in ("medius", "peer")}
            rows.append(row("latency", "%s %s" % (label, q), "ms", "lower",
                            medius=values["medius"], peer=values["peer"],
                            medius_reason=reasons.get("medius") or (
                                None if values["medius"] is not None
                                else "not measured: no samples"),
                            peer_reason=reasons.get("peer") or (
                                None if values["peer"] is not None
                                else "not measured: no samples"),
                            conditions=cond + "; SIPp's clock steps by ~4 ms"))
    return rows


def register_rows(opts, p, workdir):
    users = ["user%03d" % i for i in range(100)]
    csv = harness.write_users_csv(os.path.join(workdir, "users.csv"), users)

    def ramp_body(system):
        port = harness.free_port(REGISTER_HOST)
        best, history = ramp(lambda r: register_step(system, workdir, csv, port, r,
                                                     p["reg_step_s"]),
                             p["reg_start"], p["reg_steps"], MAX_REG_RATE, p["reg_budget_s"])
        return {"max": best, "history": history}
    log("register: ramp of Medius, then of Kamailio")
    results, reasons = run_pair(MediusRegistrar, PeerRegistrar, ramp_body, workdir)
    maxima = [r["max"] for r in results.values() if r["max"]]
    fixed_rate = max(1, min(maxima) // 2) if maxima else max(1, p["reg_start"] // 2)

    def fixed_body(system):
        return register_step(system, workdir, csv, harness.free_port(REGISTER_HOST), fixed_rate,
                             p["reg_fixed_s"])
    fixed, fixed_reasons = run_pair(MediusRegistrar, PeerRegistrar, fixed_body, workdir)
    for key in ("medius", "peer"):
        if key not in reasons and key in fixed_reasons:
            reasons[key] = fixed_reasons[key]
    m, pr = results.get("medius"), results.get("peer")
    cond = ("SIPp 127.0.0.52, 100 users, REGISTER -> 401 (MD5, qop=auth) -> REGISTER -> 200; "
            "ramp from %d/s, %d s per step, at most %d steps; Medius: gateway + registrar "
            "(memory store); peer: Kamailio %s registrar + auth, usrloc in memory"
            % (p["reg_start"], p["reg_step_s"], p["reg_steps"], kamailio_version()))
    rows = [bound_note(row(
        "register", "highest REGISTER rate with zero failures", "registrations/s", "higher",
        medius=m["max"] if m else None, peer=pr["max"] if pr else None,
        medius_reason=reasons.get("medius"), peer_reason=reasons.get("peer"), conditions=cond),
        results)]
    fm, fp = fixed.get("medius"), fixed.get("peer")
    (vm, rm), (vp, rp) = per_op(fm, reasons.get("medius"), "registration"), per_op(
        fp, reasons.get("peer"), "registration")
    rows.append(row("register", "CPU per registration, all the system's processes", "us",
                    "lower", medius=vm, peer=vp, medius_reason=rm, peer_reason=rp,
                    conditions="%d registrations/s for %d s, per successful registration%s"
                               % (fixed_rate, p["reg_fixed_s"],
                                  failures_note({"Medius": fm, "peer": fp}))))
    return rows, {"register_ramp": {k: v["history"] for k, v in results.items()},
                  "register_fixed": {"medius": fm, "peer": fp}}


def binding_rows(p, workdir):
    """Memory per registration: `bindings` distinct users register once each (digest, 3600
    s) at a rate both systems sustain; the growth of the system's PSS over the bindings it
    then holds, in bytes. A first run of as many other users at the same rate comes before
    the baseline: a SIP stack's transaction state (kept 32 s after each answer, RFC 3261
    timer J) peaks at rate x 32 s transactions, and the heap keeps that peak afterwards;
    the figure is the memory of the bindings, not of that peak (which the raw data keeps as
    warmup_growth_kib)."""
    n, rate = p["bindings"], p["binding_rate"]
    users = ["m%05d" % i for i in range(2 * n)]
    warm = harness.write_users_csv(os.path.join(workdir, "bindings-warmup.csv"), users[:n])
    csv = harness.write_users_csv(os.path.join(workdir, "bindings.csv"), users[n:])

    def body(system):
        time.sleep(1)
        start = pss_kib(system.pids)
        warmup = register_step(system, workdir, warm, harness.free_port(REGISTER_HOST), rate,
                               n / float(rate))
        time.sleep(1)
        before = pss_kib(system.pids)
        step = register_step(system, workdir, csv, harness.free_port(REGISTER_HOST), rate,
                             n / float(rate))
        time.sleep(1)
        after = pss_kib(system.pids)
        clean = all(s["ok"] == n and not s["failed"] for s in (warmup, step))
        step.update(warmup_ok=warmup["ok"], warmup_growth_kib=before - start,
                    pss_before_kib=before, pss_after_kib=after,
                    bytes_per_binding=(after - before) * 1024.0 / n if clean else None)
        return step
    log("memory per registration: %d + %d bindings into Medius, then Kamailio" % (n, n))
    results, reasons = run_pair(lambda w, o: MediusRegistrar(w, o, users=users), PeerRegistrar,
                                body, workdir)

    def value(key):
        r = results.get(key)
        if r is None:
            return None, reasons.get(key)
        if r["bytes_per_binding"] is None:
            return None, "not measured: %d and %d of %d registrations succeeded" % (
                r["warmup_ok"], r["ok"], n)
        return round(r["bytes_per_binding"]), None
    (vm, rm), (vp, rp) = value("medius"), value("peer")
    return [row("memory", "memory per registration (%d bindings)" % n, "bytes", "lower",
                medius=vm, peer=vp, medius_reason=rm, peer_reason=rp,
                conditions="%d users registered once each at %d/s (digest MD5, Expires 3600) "
                           "after %d others at the same rate (the transaction-state peak); "
                           "growth of the processes' PSS (smaps_rollup) over the second run, "
                           "1 s after it; Medius: gateway + registrar, memory store (%d users "
                           "configured before the baseline); peer: Kamailio usrloc in shared "
                           "memory (preallocated, only touched pages count)"
                           % (n, rate, n, 2 * n))], results


def media_load(opts, path, sessions, peer, p):
    """One bench/media_load run; its table row as a dict, or raises with the reason."""
    binary = os.path.join(opts.bin_dir, "media_load")
    if not os.access(binary, os.X_OK):
        raise PeerUnavailable("%s not built" % binary)
    argv = [binary, "--transcoder", os.path.join(opts.bin_dir, "media-transcoder"),
            "--peer", peer, "--path", path, "-n", str(sessions),
            "--warmup", str(p["media_warmup"]), "--seconds", str(p["media_s"])]
    if peer == "rtpengine":
        rtpengine = shutil.which("rtpengine") or "/usr/bin/rtpengine"
        if not os.access(rtpengine, os.X_OK):
            raise PeerUnavailable("rtpengine not installed (Debian package rtpengine-daemon)")
        argv += ["--rtpengine", rtpengine]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120 + sessions // 5 + p["media_warmup"] + p["media_s"])
    table = [l for l in proc.stdout.splitlines() if l.startswith("| ") and "---" not in l]
    if len(table) < 2:
        raise RuntimeError("media_load exit %d: %s" % (proc.returncode, (
            proc.stderr.strip() or proc.stdout.strip()[-300:]).splitlines()[-1:]))
    head = [c.strip() for c in table[0].strip("|").split("|")]
    values = [c.strip() for c in table[1].strip("|").split("|")]
    data = dict(zip(head, values))

    def num(key):
        try:
            return float(data.get(key, "").replace(",", ""))
        except ValueError:
            return None
    # media_load exits 1 when the peers got less than 90 % of what was sent the other way
    # (an overloaded machine): on relay rows the figure stands, with the warning beside it.
    # It also exits 1 with "FAILED: <why>" lines when a side received another codec than its
    # own or did not hear the other side's tone (not transcoded, or broken): no figure then.
    lines = proc.stdout.splitlines()
    warning = next((l for l in lines if l.startswith("WARNING")), None)
    failed = [l[len("FAILED: "):] for l in lines if l.startswith("FAILED: ")]
    threads = next((l for l in lines if l.startswith("threads: ")), None)
    no_latency = next((l[len("added latency: no figure: "):] for l in lines
                       if l.startswith("added latency: no figure: ")), None)
    latency_line = next((l for l in lines if l.startswith("added latency (")), None)
    return {"argv": " ".join(argv), "exit": proc.returncode, "warning": warning,
            "failed": failed, "threads": threads,
            "latency_us": {q: num("added latency %s us" % q) for q in ("p50", "p99", "max")},
            "latency_reason": no_latency, "latency_line": latency_line,
            "packets_per_core": num("packets/s per core"),
            "calls_per_core": num("calls per core"), "us_per_packet": num("us per relayed packet"),
            "pps_in": num("pkt/s into worker"), "cpu_pct": num("worker CPU % (process)")}


def media_latency_rows(label, runs, reasons, cond):
    """The "media added latency" p50/p99 rows (us, lower is better) of one media_load run per
    system: runs {"medius": result, "rtpengine": result} of the runs that counted, reasons
    why a system has none."""
    rows = []
    for q in ("p50", "p99"):
        values, why = {}, {}
        for k in ("medius", "rtpengine"):
            r = runs.get(k)
            if r is None:
                why[k] = reasons.get(k) or "not measured: no run"
            elif r["latency_us"][q] is None:
                why[k] = "not measured: %s" % (r["latency_reason"] or "no added latency in "
                                               "media_load's output")
            else:
                values[k] = r["latency_us"][q]
        rows.append(row("latency", "media added latency, %s %s" % (label, q), "us", "lower",
                        medius=values.get("medius"), peer=values.get("rtpengine"),
                        medius_reason=why.get("medius"), peer_reason=why.get("rtpengine"),
                        conditions=cond))
    return rows


def relay_rows(opts, p):
    rows, raw = [], []
    # The added latency rows come from one stream count: 200 when it is run (full mode),
    # else the largest.
    sizes = p["relay_sessions"]
    latency_n = 200 if 200 in sizes else max(sizes)
    latency = []
    for path in p["relay_paths"]:
        for n in p["relay_sessions"]:
            got, reasons = {}, {}
            for peer in ("medius", "rtpengine"):
                log("relay: %s, %d sessions, %s" % (path, n, peer))
                try:
                    got[peer] = media_load(opts, path, n, peer, p)
                except PeerUnavailable as e:
                    reasons[peer] = "%s: %s" % ("peer unavailable" if peer == "rtpengine"
                                                else "unavailable", e)
                except Exception as e:
                    reasons[peer] = "run failed: %s" % e
            runs = dict(got)
            for k, r in list(got.items()):
                if r["failed"]:
                    reasons[k] = "run failed: %s" % "; ".join(r["failed"])
                    del got[k]
                elif r["packets_per_core"] is None:
                    reasons[k] = ("not measured: too little CPU used to measure (a longer run "
                                  "is needed)")
            raw.append({"path": path, "sessions": n, "results": runs, "reasons": reasons})
            value = lambda k: got[k]["packets_per_core"] if k in got else None
            warnings = "; ".join("%s: %s" % (k, r["warning"]) for k, r in got.items()
                                 if r["warning"])
            rows.append(row("relay", "%s, %d streams: RTP packets/s per core" % (
                "SRTP<->RTP (AES_CM_128_HMAC_SHA1_80)" if "srtp" in path else "RTP<->RTP", n),
                "packets/s", "higher", medius=value("medius"), peer=value("rtpengine"),
                medius_reason=reasons.get("medius"), peer_reason=reasons.get("rtpengine"),
                conditions="bench/media_load --path %s -n %d --warmup %s --seconds %s: 50 "
                           "packets/s each way per stream, relay CPU from /proc; peer: "
                           "rtpengine %s userspace (--table=-1), one thread"
                           % (path, n, p["media_warmup"], p["media_s"], rtpengine_version())
                           + ("; " + warnings if warnings else "")))
            if n == latency_n:
                latency += media_latency_rows(
                    "relay %s, %d streams" % ("SRTP<->RTP" if "srtp" in path else "RTP<->RTP", n),
                    got, reasons,
                    "the same bench/media_load --path %s -n %d runs: one way, from the sending "
                    "peer's socket to the receiving one's, every packet of every stream sent in "
                    "the measured window, both directions; paired exactly by a packet index the "
                    "driver writes into the first 4 payload octets; includes the driver's own "
                    "read delay (one thread)" % (path, n))
    return rows + latency, raw


TRANSCODE_NAMES = {"pcmu-g722": "PCMU<->G.722", "pcmu-opus": "PCMU<->Opus",
                   "pcmu-g729": "PCMU<->G.729"}


def transcode_rows(opts, p):
    """Medius, then rtpengine, on each transcoded path. A run counts only when it proved it
    transcoded: each side received its own codec only and heard the other side's tone
    (media_load's FAILED lines), and each received >= 90 % of what the other sent (its
    WARNING line: a transcoder that drops is not measured, unlike a relay on a busy machine;
    it is measured again at half the calls, down to 5, and the row says so)."""
    rows, raw, latency = [], [], []
    for path in p["transcode_paths"]:
        n = p["transcode_sessions"]
        got, reasons, notes = {}, {}, []
        counted = {}  # the runs the calls-per-core figures come from
        for peer in ("medius", "rtpengine"):
            unavailable = "peer unavailable" if peer == "rtpengine" else "unavailable"
            # A system that drops at n calls (one thread saturated: rtpengine's Opus at 48 kHz
            # stereo) is measured again at half as many, down to 5: calls per core is the CPU
            # per call of a run that kept up.
            sessions = n
            while True:
                log("transcode: %s, %d sessions, %s" % (path, sessions, peer))
                try:
                    r = media_load(opts, path, sessions, peer, p)
                except PeerUnavailable as e:
                    r = None
                    reasons[peer] = "%s: %s" % (unavailable, e)
                except Exception as e:
                    r = None
                    reasons[peer] = "run failed: %s" % e
                if r is not None:
                    raw.append({"path": path, "sessions": sessions, "peer": peer, "result": r})
                if r is None or r["failed"] or not r["warning"] or sessions // 2 < 5:
                    break
                notes.append("%s measured at %d calls: at %d it dropped (%s)" % (
                    peer, sessions // 2, sessions, r["warning"][len("WARNING: "):]))
                sessions //= 2
            if r is None:
                continue
            if r["failed"]:
                # rtpengine could not do it (passed the codec through, sent silence): the
                # path has no peer figure; Medius failing it is a broken run.
                reasons[peer] = "%s: %s" % (unavailable if peer == "rtpengine" else "run failed",
                                            "; ".join(r["failed"]))
            elif r["warning"]:
                reasons[peer] = "not measured: %s" % r["warning"][len("WARNING: "):]
            elif r["calls_per_core"] is None:
                reasons[peer] = ("not measured: too little CPU used to measure (a longer run "
                                 "is needed)")
            else:
                got[peer] = r["calls_per_core"]
            if peer not in reasons:
                counted[peer] = dict(r, sessions=sessions)
        rows.append(row("transcode", "%s: calls per core" % TRANSCODE_NAMES[path], "calls",
                        "higher", medius=got.get("medius"), peer=got.get("rtpengine"),
                        medius_reason=reasons.get("medius"), peer_reason=reasons.get("rtpengine"),
                        conditions="bench/media_load --path %s -n %d --warmup %s --seconds %s: "
                                   "50 packets/s each way per call, CPU of the whole process "
                                   "from /proc; Medius: one worker (workers: 1); peer: rtpengine "
                                   "%s userspace (--table=-1), --num-threads=1 (one poller "
                                   "thread receives, decodes, encodes) --media-num-threads=1 "
                                   "(its send timer thread sends), ng codec mask=A's codec, "
                                   "transcode=B's; both checked: own codec received, other "
                                   "side's tone heard"
                                   % (path, n, p["media_warmup"], p["media_s"],
                                      rtpengine_version())
                                   + "".join("; " + x for x in notes)))
        latency += media_latency_rows(
            "transcode %s" % TRANSCODE_NAMES[path], counted, reasons,
            "the same bench/media_load --path %s runs (%s): one way, from the sending peer's "
            "socket to the receiving one's, every packet of every call sent in the measured "
            "window, both directions; 8 of the calls send a probe tone (loud 100 ms, quiet "
            "500 ms, -30 dB) and every decoded loud onset is paired with the departure of the "
            "onset sent last before it arrived (the audio itself is followed: a frame dropped or "
            "concealed inside the system moves no pairing); includes jitter buffer, codec and "
            "packetisation delay in the system and the driver's own read delay"
            % (path, ", ".join("%s %d calls" % (k, r["sessions"]) for k, r in counted.items())
               or "none counted"))
    return rows + latency, raw


# ---------------------------------------------------------------- soak

SOAK_PEER = "peer unavailable: soak measures Medius only"


def fd_count(pid):
    """Open file descriptors of a process (entries of /proc/PID/fd); None when it is gone."""
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


SMAPS_FIELDS = {"Rss:": "rss_kib", "Pss:": "pss_kib", "Anonymous:": "anon_kib"}


def memory_of(pid):
    """{"rss_kib", "pss_kib", "anon_kib"} of one process from /proc/PID/smaps_rollup (0s when
    it is gone). anon: its anonymous memory (heap, malloc arenas, stacks), what a leak grows;
    unlike PSS it does not move when another program maps the same shared libraries."""
    out = dict.fromkeys(SMAPS_FIELDS.values(), 0)
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in SMAPS_FIELDS:
                    out[SMAPS_FIELDS[parts[0]]] = int(parts[1])
    except OSError:
        pass
    return out


def process_figures(named_pids):
    """{name: {"pid", "rss_kib", "pss_kib", "anon_kib", "fds"}} of these processes (not their
    children: Medius's services fork none)."""
    return {name: dict(memory_of(pid), pid=pid, fds=fd_count(pid))
            for name, pid in named_pids.items()}


def totals(procs):
    """{"anon_total_kib", "pss_total_kib", "rss_total_kib"}: sums over process_figures()."""
    return {"%s_total_kib" % k: sum(p["%s_kib" % k] for p in procs.values())
            for k in ("anon", "pss", "rss")}


def gauges(cluster):
    """The gateway's calls in progress, the worker's sessions, the registrar's bindings, from
    their Prometheus gauges (docs/metrics.md); None for a gauge that could not be read."""
    out = {}
    for key, which, name in (("calls_active", "gateway", "medius_gateway_calls_active"),
                             ("sessions_active", "media", "medius_media_sessions_active"),
                             ("bindings", "registrar", "medius_registrar_bindings")):
        try:
            out[key] = harness.metric_value(cluster.metrics(which), name)
        except Exception:
            out[key] = None
    return out


def soak_snapshot(system):
    """What a soak compares at its start and end: every service's memory (anonymous, PSS,
    RSS) and open fds, the gateway's calls (medctl calls) and the worker's sessions (medctl
    sessions), and the gauges of the same. The fds are counted first: medctl's and the
    metrics scrape's connections come after."""
    cluster = system.cluster
    snap = {"procs": process_figures({s.name: s.pid for s in cluster.services}),
            "gauges": gauges(cluster)}
    snap.update(totals(snap["procs"]))
    for key, fetch, field in (("calls", cluster.active_calls, "calls"),
                              ("sessions", cluster.sessions, "sessions")):
        try:
            snap[key] = len(fetch().get(field) or [])
        except Exception as e:  # a service that no longer answers is a finding, not a crash
            snap[key] = None
            snap[key + "_error"] = str(e).splitlines()[0][:200] if str(e) else repr(e)
    return snap


def soak_problems(start, end):
    """Why a soak failed: a process whose open fds at the end differ from the start (or that
    is gone), gateway calls or media sessions at the end other than at the start (the
    listings and the gauges both). [] when it passed."""
    problems = []
    for name, before in sorted(start["procs"].items()):
        after = end["procs"].get(name, {})
        if after.get("fds") is None:
            problems.append("%s (pid %s) gone at the end" % (name, before["pid"]))
        elif after["fds"] != before["fds"]:
            problems.append("%s: %d open file descriptors at the end, %d at the start"
                            % (name, after["fds"], before["fds"]))
    for key, what in (("calls", "gateway calls in progress (medctl calls)"),
                      ("sessions", "media sessions (medctl sessions)")):
        if end.get(key) is None:
            problems.append("%s at the end unknown: %s" % (what, end.get(key + "_error", "?")))
        elif end[key] != start.get(key):
            problems.append("%s: %d at the end, %s at the start" % (what, end[key],
                                                                    start.get(key)))
    for key in ("calls_active", "sessions_active", "bindings"):
        a, b = start["gauges"].get(key), end["gauges"].get(key)
        if a is not None and b != a:
            problems.append("gauge %s: %s at the end, %s at the start" % (key, b, a))
    return problems


def soak_plan(seconds):
    """(warm-up s, settle s, sample interval s) of a soak of `seconds`: a minute of warm-up at
    the soak's rate (the allocators' peaks reached before the start figures), 35 s of settling
    before each idle figure (the SIP stack keeps a transaction 32 s after its answer: RFC 3261
    timer J), a memory sample every minute; shorter for a soak shorter than 5 minutes."""
    return (min(60, max(2, int(seconds // 5))), min(35, max(2, int(seconds // 5))),
            min(60.0, max(1.0, seconds / 10.0)))


def sipp_progress(step_dir):
    """Calls SIPp ended so far (successful + failed), from its stat file (-fd 1)."""
    stats = bench_calls.last_stats(step_dir)
    try:
        return int(stats.get("SuccessfulCall(C)", 0) or 0) + int(
            stats.get("FailedCall(C)", 0) or 0)
    except ValueError:
        return None


def trend_kib_per_100k(samples):
    """Least-squares slope of the total anonymous memory sampled in the second half of the
    run (all of it with fewer than 6 samples), KiB per 100,000 calls; None with fewer than 3
    samples or no calls between them. The second half: a step early in the run (the allocator
    reaching a higher peak after a burst) is not growth with the calls, a leak is."""
    pts = [(s["calls_done"], s["anon_total_kib"]) for s in samples
           if s["phase"] == "running" and s["calls_done"] is not None]
    if len(pts) >= 6:
        pts = pts[len(pts) // 2:]
    if len(pts) < 3:
        return None
    mx = sum(x for x, _ in pts) / float(len(pts))
    my = sum(y for _, y in pts) / float(len(pts))
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if not sxx:
        return None
    return 1e5 * sum((x - mx) * (y - my) for x, y in pts) / sxx


def soak_run(system, workdir, rate, seconds, call_ms):
    """Warm-up, start figures, `seconds` of calls at `rate` with a sample every interval, end
    figures (after the last call ended and the settle period)."""
    warmup_s, settle_s, interval = soak_plan(seconds)
    out = {"rate": rate, "seconds": seconds, "warmup_s": warmup_s, "settle_s": settle_s,
           "sample_interval_s": interval, "call_ms": call_ms}
    log("  soak: warm-up, %d s at %d calls/s" % (warmup_s, rate))
    out["warmup"] = call_step(system, workdir, rate, warmup_s, call_ms, "2200", rtt=False)
    out["idle_at_start"] = bench_calls.wait_idle(system.cluster, 60)
    time.sleep(settle_s)
    start = soak_snapshot(system)
    out["start"] = start
    names = {s.name: s.pid for s in system.cluster.services}

    def sample(t, phase, calls_done):
        procs = process_figures(names)
        return dict(totals(procs), t_s=round(t, 1), phase=phase, calls_done=calls_done,
                    procs={n: {k: v for k, v in p.items() if k != "pid"}
                           for n, p in procs.items()},
                    gauges=gauges(system.cluster))
    samples = [sample(0, "idle", 0)]
    log("  soak: %d s at %d calls/s (start: anonymous memory {:,} KiB, fds %s, %s calls, "
        "%s sessions)".format(start["anon_total_kib"]) % (seconds, rate,
           ", ".join("%s %s" % (n, p["fds"]) for n, p in sorted(start["procs"].items())),
           start.get("calls"), start.get("sessions")))
    step_dir = tempfile.mkdtemp(prefix="soak-%d-" % rate, dir=workdir)
    done = {}

    def run():
        try:
            # SIPp falls behind its schedule on a busy machine: a long run gets more slack.
            done["step"] = call_step(system, workdir, rate, seconds, call_ms, "2200",
                                     rtt=False, step_dir=step_dir,
                                     slack_s=30 + int(seconds // 20))
        except Exception as e:
            done["error"] = e
    worker = threading.Thread(target=run, daemon=True)
    t0 = time.monotonic()
    worker.start()
    next_at = t0 + interval
    while worker.is_alive():
        worker.join(max(0.0, min(1.0, next_at - time.monotonic())))
        now = time.monotonic()
        if now >= next_at and worker.is_alive():
            s = sample(now - t0, "running", sipp_progress(step_dir))
            samples.append(s)
            next_at += interval
            if len(samples) % max(1, int(60 // interval)) == 0:
                log("    %4.0f s: %d calls ended, anonymous memory {:,} KiB, %s calls / %s "
                    "sessions active".format(s["anon_total_kib"]) % (
                        s["t_s"], s["calls_done"] or 0,
                       s["gauges"].get("calls_active"), s["gauges"].get("sessions_active")))
    if "error" in done:
        raise done["error"]
    step = done["step"]
    out["step"] = step
    out["idle_at_end"] = bench_calls.wait_idle(system.cluster, 60)
    time.sleep(settle_s)
    end = soak_snapshot(system)
    out["end"] = end
    samples.append(sample(time.monotonic() - t0, "idle", step["ok"] + step["failed"]))
    out["samples"] = samples
    out["calls_made"] = step["ok"] + step["failed"]
    out["calls_failed"] = step["failed"] + max(0, step["expected"] - step["ok"] - step["failed"])
    made = out["calls_made"]
    for kind in ("anon", "pss", "rss"):
        growth = end["%s_total_kib" % kind] - start["%s_total_kib" % kind]
        out["%s_growth_kib" % kind] = growth
        out["%s_growth_kib_per_100k" % kind] = (1e5 * growth / made) if made else None
    out["growth_kib_per_100k"] = out["anon_growth_kib_per_100k"]
    out["trend_kib_per_100k"] = trend_kib_per_100k(samples)
    out["problems"] = soak_problems(start, end)
    return out


def soak_rows(opts, p, workdir, rate, rate_note):
    """The soak (issue 9): Medius only, `opts.soak_seconds` at `rate`; its rows, its raw data
    and the problems that fail it (fds or sessions not back to the start)."""
    seconds = opts.soak_seconds
    rows, problems = [], []
    if not rate:
        why = "not measured: no rate (%s)" % rate_note
        problems.append("soak did not run: %s" % why)
        for metric, unit in (("memory growth per 100,000 calls", "KiB"),):
            rows.append(row("soak", metric, unit, "lower", medius_reason=why,
                            peer_reason=SOAK_PEER))
        return rows, {"reason": why}, problems
    log("soak: Medius, %s at %d calls/s (%s)" % (
        "%g min" % (seconds / 60.0) if seconds >= 60 else "%g s" % seconds, rate, rate_note))
    results, reasons = run_pair(
        lambda w, o: MediusCalls(w, o, uas_timeout=max(7200, int(seconds) + 1200)), None,
        lambda system: soak_run(system, workdir, rate, seconds, p["call_ms"]), workdir)
    r = results.get("medius")
    warmup_s, settle_s, interval = soak_plan(seconds)
    base = ("%s at %d calls/s (%s), calls of %d ms, the calls row's scenario (SIPp UAC -> "
            "the 4 services -> SIPp UAS, media anchored, no RTP); start and end figures at "
            "idle: after a %d s warm-up at the rate and after the last call ended, each %d s "
            "after the calls and sessions were gone"
            % ("%g min" % (seconds / 60.0) if seconds >= 60 else "%g s" % seconds, rate,
               rate_note, p["call_ms"], warmup_s, settle_s))
    if r is None:
        why = reasons.get("medius", "run failed: no result")
        problems.append("soak did not run: %s" % why)
        rows.append(row("soak", "memory growth per 100,000 calls", "KiB", "lower",
                        medius_reason=why, peer_reason=SOAK_PEER, conditions=base))
        return rows, {"reason": why}, problems
    problems += r["problems"]
    start, end = r["start"], r["end"]

    def failed_note(*words):
        """The soak's problems about this row (its words), for its conditions."""
        mine = [x for x in r["problems"] if any(w in x for w in words)]
        return "; FAILED: " + "; ".join(mine) if mine else ""
    per_proc = ", ".join("%s {:+,}".format(end["procs"][n]["anon_kib"] - s["anon_kib"]) % n
                         for n, s in sorted(start["procs"].items()) if n in end["procs"])
    trend = r["trend_kib_per_100k"]

    def per_100k(kind):
        v = r["%s_growth_kib_per_100k" % kind]
        return "{:+,.0f}".format(v) if v is not None else "-"
    rows.append(row(
        "soak", "memory growth per 100,000 calls", "KiB", "lower",
        medius=r["growth_kib_per_100k"], peer_reason=SOAK_PEER,
        medius_reason=None if r["growth_kib_per_100k"] is not None
        else "not measured: no call made",
        conditions="%s; anonymous memory (heap, arenas, stacks: smaps_rollup's Anonymous) of "
                   "the 4 services, %s KiB at the start -> %s KiB at the end over %s calls "
                   "(KiB per service: %s); PSS %s, RSS %s KiB per 100,000 calls; trend of the "
                   "second half of the run (samples every %g s, least squares): %s KiB per "
                   "100,000 calls"
                   % (base, "{:,}".format(start["anon_total_kib"]),
                      "{:,}".format(end["anon_total_kib"]), "{:,}".format(r["calls_made"]),
                      per_proc, per_100k("pss"), per_100k("rss"), interval,
                      "{:+,.0f}".format(trend) if trend is not None else "-")))
    fd_delta = sum(abs((end["procs"].get(n, {}).get("fds") or 0) - s["fds"])
                   for n, s in start["procs"].items())
    rows.append(row(
        "soak", "open file descriptors gained or lost, all services (must be 0)", "fds",
        "lower", medius=fd_delta, peer_reason=SOAK_PEER,
        conditions="/proc/PID/fd at the start -> at the end: %s%s" % (", ".join(
            "%s %s -> %s" % (n, s["fds"], end["procs"].get(n, {}).get("fds"))
            for n, s in sorted(start["procs"].items())),
            failed_note("file descriptors", "gone"))))
    for key, metric, gauge, words in (
            ("sessions", "media sessions at the end (must equal the start)", "sessions_active",
             ("sessions",)),
            ("calls", "gateway calls in progress at the end (must equal the start)",
             "calls_active", ("calls", "bindings"))):
        rows.append(row(
            "soak", metric, key, "lower", medius=end.get(key), peer_reason=SOAK_PEER,
            medius_reason=None if end.get(key) is not None
            else "not measured: %s" % end.get(key + "_error", "?"),
            conditions="medctl %s: %s at the start, %s at the end; gauge "
                       "medius_%s_%s: %s -> %s; registrar bindings (gauge): %s -> %s%s"
                       % (key, start.get(key), end.get(key),
                          "media" if key == "sessions" else "gateway", gauge,
                          start["gauges"].get(gauge), end["gauges"].get(gauge),
                          start["gauges"].get("bindings"), end["gauges"].get("bindings"),
                          failed_note(*words))))
    step = r["step"]
    rows.append(row(
        "soak", "failed calls of {:,} made".format(r["calls_made"]), "calls", "lower",
        medius=r["calls_failed"], peer_reason=SOAK_PEER,
        conditions="SIPp: %d successful, %d failed, %d asked (%d/s x %g s), %s the asked "
                   "pace; CPU of the 4 services %s us per call over the soak"
                   % (step["ok"], step["failed"], step["expected"], rate, seconds,
                      "kept" if step.get("kept_up", True) else "did NOT keep",
                      "%.0f" % step["cpu_us_per"] if step.get("cpu_us_per") else "-")))
    return rows, r, problems


# ---------------------------------------------------------------- machine, output

def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception:
        return "unknown"


_versions = {}


def kamailio_version():
    if "kamailio" not in _versions:
        line = first_line([shutil.which("kamailio") or "/usr/sbin/kamailio", "-v"])
        _versions["kamailio"] = line.split()[2] if line.startswith("version:") else line
    return _versions["kamailio"]


def rtpengine_version():
    if "rtpengine" not in _versions:
        line = first_line([shutil.which("rtpengine") or "/usr/bin/rtpengine", "--version"])
        _versions["rtpengine"] = line.split()[-1] if line != "unknown" else line
    return _versions["rtpengine"]


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    commit = first_line(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    return {"cores": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "load_average_at_start": bench_calls.loadavg(), "medius_commit": commit,
            "kamailio": kamailio_version(), "rtpengine": rtpengine_version(),
            "sipp": first_line([harness.sipp_path(), "-v"]).replace("SIPp ", "")[:40]}


def fmt(value):
    if value is None:
        return None
    if abs(value) >= 100:
        return "{:,.0f}".format(value)
    return "{:.2f}".format(value).rstrip("0").rstrip(".") if value else "0"


def cell(value, reason, lower_bound=False):
    """A figure, or the explicit reason there is none ("peer unavailable: ...",
    "not measured: ...")."""
    if value is not None:
        return (">= " if lower_bound else "") + fmt(value)
    return reason or "not measured: no result"


def markdown(result):
    m = result["machine"]
    lines = ["# ./medius bench, %s (%s mode)" % (result["started"], result["mode"]), "",
             "Machine: %d cores, %s, kernel %s, load average at start %s; Medius %s, "
             "Kamailio %s, rtpengine %s, SIPp %s." % (m["cores"], m["cpu"], m["kernel"],
                                                      m["load_average_at_start"],
                                                      m["medius_commit"], m["kamailio"],
                                                      m["rtpengine"], m["sipp"]),
             "Ratio = Medius / peer; the \"better\" column says which direction is better.", "",
             "| row | what | Medius | peer | ratio | better | conditions |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        medius = cell(r["medius"], r["medius_unavailable"], "medius" in r["lower_bound"])
        peer = cell(r["peer"], r["peer_unavailable"], "peer" in r["lower_bound"])
        ratio = "%.2fx" % r["ratio"] if r["ratio"] is not None else "-"
        if r["ratio"] is not None and r["lower_bound"]:
            ratio += " (a bound)"
        lines.append("| %s | %s (%s) | %s | %s | %s | %s | %s |" % (
            r["row"], r["metric"], r["unit"], medius, peer, ratio, r["better"],
            r["conditions"].replace("|", "/")))
    if result.get("soak_problems"):
        lines += ["", "**SOAK FAILED**:"] + ["- %s" % x for x in result["soak_problems"]]
    return "\n".join(lines) + "\n"


def plots(result, out_base):
    """PNG plots next to the results (matplotlib, Agg backend); [] when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("python3-matplotlib missing: no plots")
        return []
    made = []
    series = [("calls", result["raw"].get("calls", {}).get("calls_ramp", {}), "calls/s asked",
               PeerCalls.name),
              ("register", result["raw"].get("register", {}).get("register_ramp", {}),
               "registrations/s asked", PeerRegistrar.name)]
    for name, ramps, xlabel, peer_name in series:
        if not ramps:
            continue
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        for system, history in ramps.items():
            label = "Medius" if system == "medius" else peer_name
            steps = sorted(history, key=lambda s: s["rate"])
            ax1.plot([s["rate"] for s in steps], [s["failed"] + max(0, s["expected"] - s["ok"]
                                                                    - s["failed"])
                                                  for s in steps], "o-", label=label)
            cpu = [(s["rate"], s["cpu_us_per"]) for s in steps if s.get("cpu_us_per")]
            if cpu:
                ax2.plot([c[0] for c in cpu], [c[1] for c in cpu], "o-", label=label)
        ax1.set_xlabel(xlabel)
        ax1.set_ylabel("failed or missing")
        ax1.set_title("%s: rate vs failures" % name)
        ax1.legend()
        ax2.set_xlabel(xlabel)
        ax2.set_ylabel("CPU us per %s" % ("call" if name == "calls" else "registration"))
        ax2.set_title("%s: CPU per operation vs rate" % name)
        ax2.legend()
        fig.tight_layout()
        path = "%s-%s.png" % (out_base, name)
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)
    # The SIP latencies (ms, peer Kamailio); the media added latencies (us) are table only.
    lat = [r for r in result["rows"] if r["row"] == "latency" and r["unit"] == "ms"]
    if lat:
        fig, ax = plt.subplots(figsize=(8, 4))
        labels = [r["metric"] for r in lat]
        xs = range(len(lat))
        ax.bar([x - 0.2 for x in xs], [r["medius"] or 0 for r in lat], 0.4, label="Medius")
        ax.bar([x + 0.2 for x in xs], [r["peer"] or 0 for r in lat], 0.4,
               label=PeerCalls.name if not result["target"] else "peer")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, rotation=15, fontsize=8)
        ax.set_ylabel("ms")
        ax.set_title("latency percentiles (0 = no result)")
        ax.legend()
        fig.tight_layout()
        path = "%s-latency.png" % out_base
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)
    samples = (result["raw"].get("soak") or {}).get("samples")
    if samples:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        minutes = [s["t_s"] / 60.0 for s in samples]
        # Change since the start: a leak is a rising line; the levels are in the JSON.
        first = samples[0]
        ax1.plot(minutes, [(s["anon_total_kib"] - first["anon_total_kib"]) / 1024.0
                           for s in samples], "k.-", label="total")
        for name in sorted(first["procs"]):
            ax1.plot(minutes, [(s["procs"].get(name, {}).get("anon_kib", 0)
                                - first["procs"][name]["anon_kib"]) / 1024.0
                               for s in samples], ".-", label=name)
            ax2.plot(minutes, [s["procs"].get(name, {}).get("fds") or 0 for s in samples],
                     ".-", label=name)
        ax1.set_xlabel("minutes since the soak's start (first and last points: idle)")
        ax1.set_ylabel("anonymous memory minus at the start, MiB")
        ax1.set_title("soak: memory growth of the Medius services")
        ax1.legend(fontsize=7)
        ax2.set_xlabel("minutes since the soak's start")
        ax2.set_ylabel("open file descriptors")
        ax2.set_title("soak: file descriptors")
        ax2.legend(fontsize=7)
        fig.tight_layout()
        path = "%s-soak.png" % out_base
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)
    return made


def check(result):
    """Every row has a number (Medius) and a number or an explicit reason (peer)."""
    problems = []
    for r in result["rows"]:
        name = "%s / %s" % (r["row"], r["metric"])
        if r["medius"] is None and not r["medius_unavailable"]:
            problems.append("%s: no Medius figure and no reason" % name)
        if r["peer"] is None and not r["peer_unavailable"]:
            problems.append("%s: no peer figure and no reason" % name)
    # A soak whose fds, calls or sessions did not come back to the start (or that did not run).
    problems += ["soak: %s" % x for x in result.get("soak_problems") or []]
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny settings, 2-3 minutes")
    mode.add_argument("--smoke", action="store_true",
                      help="smaller still (the ctest smoke test): checks the harness works")
    parser.add_argument("--rows", default=",".join(ROWS),
                        help="comma separated, of: %s" % ",".join(ROWS))
    parser.add_argument("--soak", type=float, nargs="?", const=30.0, metavar="MINUTES",
                        help="after the other rows, a soak of Medius: MINUTES (30) of calls at "
                             "half the calls row's highest clean rate (or --rate); memory "
                             "growth per 100,000 calls, fds and sessions back to the start")
    parser.add_argument("--soak-seconds", type=float, help=argparse.SUPPRESS)  # tests
    parser.add_argument("--target", help="HOST:PORT of a running deployment (needs --rate)")
    parser.add_argument("--rate", type=int,
                        help="calls/s against --target, or of the soak (instead of half the "
                             "calls row's highest rate)")
    parser.add_argument("--number", default="2200", help="number dialled at --target")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="results directory")
    parser.add_argument("--bin-dir", default=os.environ.get("MEDIUS_BIN_DIR",
                                                            os.path.join(ROOT, "build", "bin")))
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless every row has a number or an explicit reason")
    opts = parser.parse_args()
    rows = [r.strip() for r in opts.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS + ("soak",)]
    if unknown:
        parser.error("unknown rows: %s (known: %s, and soak)" % (",".join(unknown),
                                                                 ",".join(ROWS)))
    # The soak: --soak [MINUTES], or "soak" among the rows (30 minutes unless --soak says).
    if opts.soak_seconds is None and (opts.soak is not None or "soak" in rows):
        opts.soak_seconds = 60.0 * (opts.soak if opts.soak is not None else 30.0)
    if opts.soak_seconds is not None:
        if opts.soak_seconds <= 0:
            parser.error("--soak needs a positive number of minutes")
        rows = [r for r in rows if r != "soak"] + ["soak"]
        if opts.target:
            parser.error("--soak measures the processes the bench starts itself (memory, "
                         "fds, sessions), not a --target deployment")
        if not opts.rate and not set(rows) & {"calls", "latency", "memory"}:
            parser.error("--soak needs a rate: run the calls row too (the soak runs at half "
                         "its highest clean rate) or give --rate N")
    if opts.rate is not None and opts.rate <= 0:
        parser.error("--rate needs a positive number of calls/s")
    if opts.target and not opts.rate:
        parser.error("--target needs --rate (a bounded rate for a real deployment)")
    if opts.rate and not opts.target and opts.soak_seconds is None:
        parser.error("--rate is the rate of --target or of --soak")
    opts.bin_dir = os.path.abspath(opts.bin_dir)
    os.environ["MEDIUS_BIN_DIR"] = opts.bin_dir
    mode_name = "smoke" if opts.smoke else "quick" if opts.quick else "full"
    p = PRESETS[mode_name]
    started = datetime.datetime.now(datetime.timezone.utc)
    stamp = started.strftime("%Y-%m-%dT%H%M%SZ")
    os.makedirs(opts.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="medius-bench-")
    result = {"started": started.strftime("%Y-%m-%d %H:%M:%S UTC"), "mode": mode_name,
              "rows_asked": rows, "target": opts.target, "machine": machine(), "rows": [],
              "raw": {}, "workdir": workdir}
    log("bench (%s mode), binaries %s, work dir %s" % (mode_name, opts.bin_dir, workdir))
    t0 = time.monotonic()
    try:
        if "calls" in rows or "latency" in rows or "memory" in rows:
            got, raw = calls_rows(opts, p, workdir, "latency" in rows,
                                  "memory" in rows and not opts.target)
            if "calls" not in rows:
                got = [r for r in got if r["row"] != "calls"]
            result["rows"] += got
            result["raw"]["calls"] = raw
        if "register" in rows:
            if opts.target:
                result["rows"].append(row("register", "REGISTER rate", "registrations/s",
                                          "higher",
                                          medius_reason="not measured: not run with --target",
                                          peer_reason="peer unavailable: not run with --target"))
            else:
                got, raw = register_rows(opts, p, workdir)
                result["rows"] += got
                result["raw"]["register"] = raw
        for name, fn in (("relay", relay_rows), ("transcode", transcode_rows)):
            if name not in rows:
                continue
            if opts.target:
                result["rows"].append(row(name, "media", "-", "higher",
                                          medius_reason="not measured: not run with --target "
                                          "(the media rows start their own worker)",
                                          peer_reason="peer unavailable: not run with --target"))
                continue
            got, raw = fn(opts, p)
            result["rows"] += got
            result["raw"][name] = raw
        if "memory" in rows:
            if opts.target:
                result["rows"].append(row("memory", "memory per registration", "bytes", "lower",
                                          medius_reason="not measured: not run with --target",
                                          peer_reason="peer unavailable: not run with --target"))
            else:
                got, raw = binding_rows(p, workdir)
                result["rows"] += got
                result["raw"]["bindings"] = raw
        if opts.soak_seconds is not None:
            if opts.rate:
                rate, note = opts.rate, "--rate"
            else:
                best = (result["raw"].get("calls", {}).get("max") or {}).get("medius")
                rate = max(1, best // 2) if best else None
                note = ("half of %d/s, Medius's highest clean rate in this run" % best
                        if best else "the calls row found no clean rate for Medius; give "
                        "--rate N")
            got, raw, problems = soak_rows(opts, p, workdir, rate, note)
            result["rows"] += got
            result["raw"]["soak"] = raw
            result["soak_problems"] = problems
    finally:
        result["seconds"] = round(time.monotonic() - t0, 1)
        base = os.path.join(opts.out, stamp)
        result["plots"] = plots(result, base)
        with open(base + ".json", "w") as f:
            json.dump(result, f, indent=2, default=str)
        text = markdown(result)
        with open(base + ".md", "w") as f:
            f.write(text)
        print()
        print(text)
        log("results: %s.json, %s.md%s (%.0f s)" % (
            base, base, "".join(", " + x for x in result["plots"]), result["seconds"]))
        if not os.environ.get("MEDIUS_E2E_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
    for problem in result.get("soak_problems") or []:
        print("SOAK FAILED: %s" % problem, file=sys.stderr)
    if opts.check:
        problems = check(result)
        if not result["rows"]:
            problems.append("no rows")
        for problem in problems:
            print("CHECK FAILED: %s" % problem, file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
