#!/usr/bin/env python3
"""Registrations per second through the signaling gateway, measured with SIPp.

A measurement, not a test (ctest does not run it; nothing is asserted). Each
registration is REGISTER -> 401 -> REGISTER with MD5 credentials -> 200, i.e. two SIP
transactions and two registrar gRPC calls.

  # own cluster on free ports (MEDIUS_BIN_DIR or --bin-dir, default build/bin):
  /usr/bin/python3 tests/e2e/bench_register.py --calls 5000 --rate 400 --rate 800
  # a running cluster (./medius up --detach), whose registrar knows the users in --csv
  # or user000..user0NN with passwords pw-userNNN, and offers MD5 first:
  /usr/bin/python3 tests/e2e/bench_register.py --local-cluster --target 127.0.0.1:5062

Prints, per rate, the exact sipp command, successful/failed registrations, wall time
and registrations per second.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402


def stat(stdout, name):
    """Cumulative value of a row of SIPp's final statistics screen."""
    values = re.findall(r"^\s*%s\s*\|[^|]*\|\s*(\d+)" % re.escape(name), stdout, re.M)
    return int(values[-1]) if values else 0


def cpu_seconds(pid):
    """utime + stime of a process, seconds (/proc/PID/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(target, workdir, csv, calls, rate, limit, transport, port):
    argv = [harness.sipp_path(), target, "-sf", os.path.join(harness.SCENARIOS, "register.xml"),
            "-t", transport, "-i", "127.0.0.1", "-p", str(port),
            "-mp", str(harness.free_port()), "-key", "domain", harness.DOMAIN,
            "-auth_uri", harness.DOMAIN, "-key", "expires", "3600", "-inf", csv,
            "-m", str(calls), "-r", str(rate), "-l", str(limit), "-nostdin",
            "-timeout", "300s", "-timeout_error",
            "-error_file", os.path.join(workdir, "bench_errors.log"), "-trace_err"]
    started = time.monotonic()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=330, cwd=workdir)
    elapsed = time.monotonic() - started
    ok = stat(proc.stdout, "Successful call")
    failed = stat(proc.stdout, "Failed call")
    return argv, proc.returncode, ok, failed, elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100, help="distinct users (user000..)")
    parser.add_argument("--calls", type=int, default=3000, help="registrations per run")
    parser.add_argument("--rate", type=int, action="append",
                        help="SIPp call rate per second (repeatable; default 200 400 800 1600)")
    parser.add_argument("--limit", type=int, default=500, help="max simultaneous registrations")
    parser.add_argument("--transport", default="u1", help="SIPp -t (u1 or t1)")
    parser.add_argument("--local-cluster", action="store_true",
                        help="use the running cluster at --target instead of starting one")
    parser.add_argument("--target", default="127.0.0.1:5062",
                        help="gateway internal address for --local-cluster")
    parser.add_argument("--csv", help="injection file to use (user;password;[authentication])")
    parser.add_argument("--bin-dir", help="build bin/ dir (default $MEDIUS_BIN_DIR or build/bin)")
    args = parser.parse_args()
    rates = args.rate or [200, 400, 800, 1600]

    if args.bin_dir:
        os.environ["MEDIUS_BIN_DIR"] = args.bin_dir
    os.environ.setdefault("MEDIUS_BIN_DIR",
                          os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "bin"))

    cluster = None
    workdir = tempfile.mkdtemp(prefix="medius-bench-")
    try:
        if args.local_cluster:
            target = args.target
        else:
            # SIPp's address is exempt from the per-source flood limit (docs/security.md):
            # this measures registrations per second, not the flood guard.
            cluster = harness.Cluster(algorithms=("MD5",), name="bench", gateway_extra={
                "security": {"flood": {"exempt": ["127.0.0.1"]}}})
            cluster.start()
            target = "127.0.0.1:%d" % cluster.internal_port
        users = ["user%03d" % i for i in range(args.users)]
        csv = args.csv or harness.write_users_csv(os.path.join(workdir, "users.csv"), users)
        print("gateway %s, %d users, %d registrations per run, binaries %s"
              % (target, args.users, args.calls, os.environ["MEDIUS_BIN_DIR"]))
        # One local port for every run: the Contacts stay the same, so later runs refresh
        # the bindings instead of adding contacts (max_contacts_per_aor).
        port = harness.free_port()
        for rate in rates:
            services = cluster.services if cluster is not None else []
            before = {svc.name: cpu_seconds(svc.pid) for svc in services}
            argv, rc, ok, failed, elapsed = run(target, workdir, csv, args.calls, rate,
                                                args.limit, args.transport, port)
            print("\nsipp command: %s" % " ".join(argv))
            print("rate %5d/s: exit %d, %d ok, %d failed, %.2f s wall -> %.0f registrations/s"
                  % (rate, rc, ok, failed, elapsed, ok / elapsed if elapsed else 0))
            for svc in services:
                used = cpu_seconds(svc.pid) - before[svc.name]
                print("  %-18s CPU %.2f s = %.0f us per registration"
                      % (svc.name, used, 1e6 * used / ok if ok else 0))
            sys.stdout.flush()
        if cluster is not None:
            print("\nregistrar bindings: %s" % harness.metric_value(
                cluster.metrics("registrar"), "medius_registrar_bindings"))
    finally:
        if cluster is not None:
            cluster.cleanup()


if __name__ == "__main__":
    main()
