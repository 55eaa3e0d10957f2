#!/usr/bin/env python3
"""Calls per second through the whole cluster, media anchored, measured with SIPp.

A measurement, not a test (ctest does not run it; nothing is asserted). It starts
harness.Cluster(calls=True) from MEDIUS_BIN_DIR (registrar, routing, media-transcoder,
signaling-gateway), a SIPp PBX UAS (uas_answer.xml with -rtp_echo) on the pbx trunk address
(127.0.0.13) and, per rate, a SIPp caller from 127.0.0.21 to the gateway's internal side
dialling 2200 (PBX extension route): INVITE -> 100/180/200 -> ACK, RTP for --duration
seconds (uac_call.xml plays g711a.pcap; the worker relays it to the PBX, which echoes it back
through the worker), BYE -> 200. --no-media uses uac_no_media.xml (SDP, no RTP).

For each rate it also runs the same caller directly against a second SIPp UAS (no Medius,
same scenario, same -rtp_echo) and reports Medius's setup time relative to that peer.

  MEDIUS_BIN_DIR=build-bench/bin /usr/bin/python3 tests/e2e/bench_calls.py \
      --rates 20,50,100,150,200 --duration 5 --seconds 20

Per rate: SIPp successful/failed calls (and the failure kinds of SIPp's stat file), the
INVITE->200 setup time percentiles (-trace_rtt, every call), CPU seconds per call of each
service (/proc/PID/stat utime+stime before/after) and the media worker's packet counters.
Stops at the first rate with a failed call or a setup p95 above --max-p95-ms, and prints a
table. The machine's load averages are printed with each step.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

CALLER_HOST = "127.0.0.21"
DIRECT_HOST = "127.0.0.14"  # the peer run's UAS (no Medius)


class BenchCluster(harness.Cluster):
    """Cluster(calls=True) with a media port range large enough for the concurrent calls
    (the harness gives tests a window of 200 ports = 50 two-leg sessions)."""

    def __init__(self, media_ports, **kw):
        self.bench_media_ports = media_ports
        super().__init__(**kw)

    def media_env(self):
        env = super().media_env()
        env["MEDIUS_MEDIA_PORT_MIN"], env["MEDIUS_MEDIA_PORT_MAX"] = map(
            str, self.bench_media_ports)
        return env


def cpu_seconds(pid):
    """utime + stime of a process, seconds (/proc/PID/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def udp_rcvbuf_errors():
    """Datagrams the kernel dropped because a socket's receive buffer was full (all of
    the machine: the counter is global)."""
    with open("/proc/net/snmp") as f:
        rows = [l.split() for l in f if l.startswith("Udp:")]
    return int(dict(zip(rows[0][1:], rows[1][1:]))["RcvbufErrors"])


def machine_busy():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def sipp_argv(scenario, local_ip, port, media_port, workdir, extra, target=None):
    argv = [harness.sipp_path()]
    if target:
        argv.append(target)
    argv += ["-sf", os.path.join(harness.SCENARIOS, scenario), "-t", "u1",
             "-i", local_ip, "-p", str(port), "-mi", local_ip, "-mp", str(media_port),
             "-nostdin", "-trace_err", "-error_file", os.path.join(workdir, "errors.log"),
             "-trace_stat", "-stf", os.path.join(workdir, "stat.csv"), "-fd", "1"]
    return argv + list(extra)


class Uas:
    """A SIPp uas_answer.xml with -aa and -rtp_echo, in the background (stopped by PID)."""

    def __init__(self, host, port, workdir, timeout):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        self.argv = sipp_argv("uas_answer.xml", host, port, harness.free_media_port(host),
                              workdir, ["-aa", "-rtp_echo", "-d", "0", "-timeout",
                                        "%ds" % timeout, "-key", "domain", harness.DOMAIN])
        self.out = open(os.path.join(workdir, "stdout"), "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, cwd=workdir)
        time.sleep(0.5)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


def last_stats(workdir):
    rows = [l for l in harness._read(os.path.join(workdir, "stat.csv")).splitlines()
            if l.strip()]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0].rstrip(";").split(";"), rows[-1].rstrip(";").split(";")))


def setup_times_ms(workdir):
    """Every INVITE->200 time from SIPp's -trace_rtt file (Date_ms;response_time_ms;rtd_no)."""
    values = []
    for path in glob.glob(os.path.join(workdir, "*_rtt.csv")):
        for line in harness._read(path).splitlines():
            parts = line.strip().rstrip(";").split(";")
            if len(parts) >= 2:
                try:
                    values.append(float(parts[1]))
                except ValueError:
                    pass  # header
    return sorted(values)


def pct(values, p):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def run_caller(scenario, target, ruri_host, workdir, rate, calls, duration_s, timeout):
    os.makedirs(workdir, exist_ok=True)
    keys = {"caller": "alice", "from_host": harness.DOMAIN, "ruri_host": ruri_host,
            "domain": harness.DOMAIN}
    extra = ["-s", "2200", "-m", str(calls), "-r", str(rate), "-d", str(int(duration_s * 1000)),
             "-l", str(max(100, int(rate * (duration_s + 5) * 3))),
             "-timeout", "%ds" % timeout, "-timeout_error", "-aa",
             "-recv_timeout", "20000", "-trace_rtt", "-rtt_freq", "1",
             # The gateway challenges every call (auth.calls): 407, then alice's credentials.
             "-au", "alice", "-ap", harness.user_password("alice")]
    for key, value in keys.items():
        extra += ["-key", key, value]
    argv = sipp_argv(scenario, CALLER_HOST, harness.free_port(CALLER_HOST),
                     harness.free_media_port(CALLER_HOST), workdir, extra, target=target)
    started = time.monotonic()
    with open(os.path.join(workdir, "stdout"), "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=workdir)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    stats = last_stats(workdir)
    times = setup_times_ms(workdir)
    failures = {k[len("Failed"):-3]: int(v) for k, v in stats.items()
                if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)"
                and v.isdigit() and int(v)}
    errors = harness._read(os.path.join(workdir, "errors.log"))
    # What aborted the failed calls: one count per call, "503 Media Timeout" etc.
    unexpected = {}
    for _, what in set(re.findall(r"Aborting call on unexpected message for Call-Id '([^']+)'"
                                  r".*?received '(SIP/2\.0 \d+[^\r\n]*|[A-Z]+ )", errors,
                                  re.S)):
        what = what.replace("SIP/2.0 ", "").strip()
        unexpected[what] = unexpected.get(what, 0) + 1
    return {"argv": argv, "rc": proc.returncode, "elapsed": elapsed,
            "sipp_cpu": usage.ru_utime + usage.ru_stime,
            "ok": int(stats.get("SuccessfulCall(C)", 0) or 0),
            "failed": int(stats.get("FailedCall(C)", 0) or 0), "failures": failures,
            "responses_in_errors": unexpected, "times": times,
            "p50": pct(times, 50), "p95": pct(times, 95), "p99": pct(times, 99),
            "max": times[-1] if times else float("nan")}


def media_counters(cluster):
    text = cluster.metrics("media")
    out = {}
    for key, name, labels in (
            ("a_to_b", "medius_media_packets_total", {"direction": "a_to_b"}),
            ("b_to_a", "medius_media_packets_total", {"direction": "b_to_a"}),
            ("sessions_ok", "medius_media_sessions_total", {"result": "ok"}),
            ("sessions_exhausted", "medius_media_sessions_total",
             {"result": "resource_exhausted"}),
            ("timeouts", "medius_media_timeouts_total", None)):
        out[key] = harness.metric_value(text, name, labels) or 0.0
    return out


def wait_idle(cluster, timeout=40):
    """Until the gateway has no call and the worker no session (the previous rate's
    leftovers would count against the next one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (not cluster.active_calls().get("calls")
                    and not cluster.sessions().get("sessions")):
                return True
        except Exception:
            pass
        time.sleep(0.5)
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="20,50,100,150,200",
                        help="calls per second, comma separated, in increasing order")
    parser.add_argument("--duration", type=float, default=5.0, help="call duration D, s")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="seconds of call arrivals per rate (N = rate * seconds)")
    parser.add_argument("--calls", type=int, help="N calls per rate (overrides --seconds)")
    parser.add_argument("--no-media", action="store_true",
                        help="uac_no_media.xml (SDP, no RTP) instead of uac_call.xml")
    parser.add_argument("--no-direct", action="store_true", help="skip the SIPp-to-SIPp peer")
    parser.add_argument("--max-p95-ms", type=float, default=1000.0)
    parser.add_argument("--media-ports", default="40000-59999",
                        help="media-transcoder port range (2 pairs per call)")
    parser.add_argument("--bin-dir", help="build bin/ dir (default $MEDIUS_BIN_DIR or build/bin)")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    scenario = "uac_no_media.xml" if args.no_media else "uac_call.xml"

    if args.bin_dir:
        os.environ["MEDIUS_BIN_DIR"] = args.bin_dir
    os.environ.setdefault("MEDIUS_BIN_DIR",
                          os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "bin"))
    lo, hi = (int(p) for p in args.media_ports.split("-"))

    workdir = tempfile.mkdtemp(prefix="medius-bench-calls-")
    # The caller's address is exempt from the per-source flood limit (docs/security.md): this
    # measures call throughput, not the flood guard.
    cluster = BenchCluster((lo, hi), name="bench-calls", calls=True,
                           gateway_extra={"security": {"flood": {"exempt": [CALLER_HOST]}}})
    pbx = direct = None
    rows = []
    try:
        cluster.start()
        pbx = Uas(harness.TRUNK_HOSTS["pbx"], cluster.trunk_ports["pbx"],
                  os.path.join(workdir, "pbx"), 7200)
        deadline = time.monotonic() + 20
        while harness.metric_value(cluster.metrics("routing"), "medius_routing_trunk_up",
                                   {"trunk": "pbx"}) != 1.0:
            if time.monotonic() > deadline:
                raise RuntimeError("pbx trunk never came up in routing")
            time.sleep(0.2)
        if not args.no_direct:
            direct_port = harness.free_port(DIRECT_HOST)
            direct = Uas(DIRECT_HOST, direct_port, os.path.join(workdir, "direct-uas"), 7200)
        print("binaries %s, caller %s, %s, calls of %.0f s, media ports %d-%d, workdir %s"
              % (os.environ["MEDIUS_BIN_DIR"], CALLER_HOST, scenario, args.duration, lo, hi,
                 workdir))
        print("pbx UAS: %s" % " ".join(pbx.argv))
        sys.stdout.flush()
        gw_target = "127.0.0.1:%d" % cluster.internal_port
        for rate in rates:
            calls = args.calls or int(rate * args.seconds)
            timeout = int(calls / rate + args.duration + 60)
            wait_idle(cluster)
            load_before = loadavg()
            before = {svc.name: cpu_seconds(svc.pid) for svc in cluster.services}
            before["sipp-pbx"] = cpu_seconds(pbx.proc.pid)
            drops_before, busy_before = udp_rcvbuf_errors(), machine_busy()
            counters_before = media_counters(cluster)
            medius = run_caller(scenario, gw_target, harness.DOMAIN,
                                os.path.join(workdir, "medius-%d" % rate), rate, calls,
                                args.duration, timeout)
            busy_after = machine_busy()
            drops = udp_rcvbuf_errors() - drops_before
            cpu = {svc.name: cpu_seconds(svc.pid) - before[svc.name]
                   for svc in cluster.services}
            cpu["sipp-pbx"] = cpu_seconds(pbx.proc.pid) - before["sipp-pbx"]
            cpu["sipp-caller"] = medius["sipp_cpu"]
            machine = 100.0 * (busy_after[0] - busy_before[0]) / max(
                1, busy_after[1] - busy_before[1])
            leftovers = not wait_idle(cluster, 20)
            counters = {k: v - counters_before[k] for k, v in media_counters(cluster).items()}
            print("\n== %d calls/s, %d calls of %.0f s (~%d concurrent), load avg before %s, "
                  "after %s" % (rate, calls, args.duration, rate * args.duration, load_before,
                                loadavg()))
            print("sipp command: %s" % " ".join(medius["argv"]))
            print("Medius: exit %d, %d successful, %d failed %s %s, %.1f s wall; setup ms "
                  "p50 %.1f p95 %.1f p99 %.1f max %.1f%s"
                  % (medius["rc"], medius["ok"], medius["failed"], medius["failures"] or "",
                     medius["responses_in_errors"] or "", medius["elapsed"], medius["p50"],
                     medius["p95"], medius["p99"], medius["max"],
                     "; calls/sessions left after 20 s!" if leftovers else ""))
            print("  machine CPU busy %.0f%% (of %d cores) during the run, UDP receive-buffer "
                  "drops %d" % (machine, os.cpu_count(), drops))
            per_call = {}
            for name, used in cpu.items():
                per_call[name] = 1000.0 * used / medius["ok"] if medius["ok"] else 0.0
                print("  %-18s CPU %6.2f s = %6.2f ms per call" % (name, used, per_call[name]))
            print("  media worker: packets a_to_b %d b_to_a %d (%.0f per call), sessions ok %d, "
                  "exhausted %d, timeouts %d"
                  % (counters["a_to_b"], counters["b_to_a"],
                     (counters["a_to_b"] + counters["b_to_a"]) / max(1, medius["ok"]),
                     counters["sessions_ok"], counters["sessions_exhausted"],
                     counters["timeouts"]))
            peer = None
            if direct is not None:
                peer = run_caller(scenario, "%s:%d" % (DIRECT_HOST, direct_port),
                                  "%s:%d" % (DIRECT_HOST, direct_port),
                                  os.path.join(workdir, "direct-%d" % rate), rate, calls,
                                  args.duration, timeout)
                print("Direct SIPp->SIPp: %d successful, %d failed %s; setup ms p50 %.2f "
                      "p95 %.2f p99 %.2f max %.2f"
                      % (peer["ok"], peer["failed"], peer["failures"] or "", peer["p50"],
                         peer["p95"], peer["p99"], peer["max"]))
            sys.stdout.flush()
            rows.append((rate, calls, medius, per_call, counters, peer, load_before, machine,
                         drops))
            if medius["failed"] or medius["ok"] < calls or medius["p95"] > args.max_p95_ms:
                print("stopping: %s" % ("failed calls" if medius["failed"] or
                                        medius["ok"] < calls else "setup p95 > %.0f ms"
                                        % args.max_p95_ms))
                break

        print("\n| rate (calls/s) | calls | ~concurrent | ok | failed | setup p50 / p95 / p99 ms "
              "| direct p50 / p95 ms | p50 ratio | gateway ms CPU/call | media ms CPU/call "
              "| routing ms CPU/call | SIPp caller+PBX ms CPU/call | RTP pkts/call | machine busy "
              "| UDP rcvbuf drops | load avg before |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for rate, calls, m, per_call, counters, peer, load, machine, drops in rows:
            ratio = (m["p50"] / peer["p50"]) if peer and peer["p50"] else float("nan")
            print("| %d | %d | %d | %d | %d | %.1f / %.1f / %.1f | %s | %s | %.2f | %.2f | %.2f "
                  "| %.2f | %.0f | %.0f%% | %d | %s |"
                  % (rate, calls, rate * args.duration, m["ok"], m["failed"], m["p50"],
                     m["p95"], m["p99"],
                     "%.2f / %.2f" % (peer["p50"], peer["p95"]) if peer else "-",
                     "%.1fx" % ratio if peer else "-",
                     per_call.get("signaling-gateway", 0), per_call.get("media-transcoder", 0),
                     per_call.get("routing", 0),
                     per_call.get("sipp-caller", 0) + per_call.get("sipp-pbx", 0),
                     (counters["a_to_b"] + counters["b_to_a"]) / max(1, m["ok"]), machine, drops,
                     load))
    finally:
        for uas in (pbx, direct):
            if uas is not None:
                uas.stop()
        bad = cluster.cleanup()
        if bad:
            print("services exited badly: %s (logs in %s)" % (bad, cluster.dir))


if __name__ == "__main__":
    main()
