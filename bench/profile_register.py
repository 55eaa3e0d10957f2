#!/usr/bin/env python3
"""CPU per registration of Medius's gateway + registrar at one REGISTER rate, and optionally
a perf profile of both (docs/performance.md, "Optimisation round 1").

  MEDIUS_BIN_DIR=build/bin /usr/bin/python3 bench/profile_register.py [RATE] [--seconds N]
  PERF=1 ...   also records `perf record -g --call-graph dwarf` of both processes into
               <workdir>/perf-register.data (read it with `perf report -i ...`)

The same cluster and SIPp step as `./medius bench`'s register row (bench.MediusRegistrar,
bench.register_step: 100 users, REGISTER -> 401 -> REGISTER with credentials -> 200): a 3 s
warm-up, then the measured step. Everything runs on 127.0.0.x and is stopped by PID.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import harness  # noqa: E402  (tests/e2e, put on the path by bench)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rate", nargs="?", type=int, default=1500)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="medius-profile-register-")
    users = ["user%03d" % i for i in range(100)]
    csv = harness.write_users_csv(os.path.join(workdir, "users.csv"), users)
    system = bench.MediusRegistrar(workdir, None)
    system.start()
    perf = None
    try:
        names = [s.name for s in system.cluster.services]
        bench.register_step(system, workdir, csv, harness.free_port(bench.REGISTER_HOST),
                            args.rate, 3)
        if os.environ.get("PERF"):
            out = os.path.join(workdir, "perf-register.data")
            perf = subprocess.Popen(
                ["perf", "record", "-F", "999", "-g", "--call-graph", "dwarf,16384",
                 "-p", ",".join(str(p) for p in system.pids), "-o", out],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        before = {n: bench.bench_calls.cpu_seconds(p) for n, p in zip(names, system.pids)}
        step = bench.register_step(system, workdir, csv, harness.free_port(bench.REGISTER_HOST),
                                   args.rate, args.seconds)
        after = {n: bench.bench_calls.cpu_seconds(p) for n, p in zip(names, system.pids)}
        if perf:
            perf.send_signal(2)
            perf.wait()
            print("perf data: %s" % out)
        print("%d ok, %d failed in %.1f s (%.0f/s); CPU per registration %.0f us"
              % (step["ok"], step["failed"], step["elapsed_s"], step["achieved_per_s"],
                 step["cpu_us_per"] or 0))
        for n in names:
            print("  %-18s %.0f us" % (n, 1e6 * (after[n] - before[n]) / max(1, step["ok"])))
    finally:
        if perf and perf.poll() is None:
            perf.kill()
            perf.wait()
        system.stop()


if __name__ == "__main__":
    main()
