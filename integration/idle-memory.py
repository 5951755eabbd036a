#!/usr/bin/env python3
"""Memory of idle supervisors, side by side, from /proc/PID/smaps.

    integration/idle-memory.py [--bin target/release] [--settle 3] [--idle 60]
                               [--maps] [--json FILE]

Starts, each on its own `sleep 100000` (a link to sleep whose name carries a
tag, so that the clean-up finds it):

    dmon -n sleep                      (foreground)
    dmon -p F sleep -- cat             (a daemon with a log command)
    dmon -n -L 5 -l 1 sleep            (paused and resumed at the last moment)
    runsv DIR, s6-supervise DIR, supervise DIR     (when installed)

and reads each supervisor's VmRSS, Pss, Private_Dirty, Private_Clean and
Shared_Clean (smaps_rollup) at four moments: after --settle seconds; after
--idle more seconds of idling; after its command was killed and restarted;
after a signal to dmon (USR1, which dmon reads and, without -F, forwards to
nobody; the peers get none, as USR1 would end daemontools' supervise); after
the `-L` dmon's tree was paused and resumed (its load average is a file,
DMON_LOADAVG_FILE, set above 5 and back below 1). --maps prints, for the first moment, the same
figures per mapped file. Run as root (dmon makes cgroups); `sync` first, or a
freshly built binary's pages, still dirty in the page cache, show as
Private_Dirty instead of Private_Clean.

Pss divides each shared page among its mappers: libc's pages count a little,
since every process maps them; a binary's own text counts fully while only one
process runs it. Private_Dirty is what the process alone costs (heap, stack,
written data): nothing else holds it.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FIELDS = ("Rss", "Pss", "Private_Dirty", "Private_Clean", "Shared_Clean")
TAG = f"idlemem{os.getpid()}"


def rollup(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in FIELDS:
                out[key] = int(rest.split()[0])
    return out


def per_mapping(pid):
    """{name: {field: KiB}} summed over the mappings of each file (or kind)."""
    out = {}
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split()
            if "-" in first[0] and len(first) >= 5 and ":" not in first[0]:
                name = first[5] if len(first) > 5 else "[anon]"
                name = os.path.basename(name) if name.startswith("/") else name
                out.setdefault(name, {k: 0 for k in FIELDS})
            elif first[0].rstrip(":") in FIELDS:
                out[name][first[0].rstrip(":")] += int(first[1])
    return out


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def descendants(pid):
    out = []
    for c in children(pid):
        out.append(c)
        out += descendants(c)
    return out


def sleeper_of(pid):
    """The pid of the tagged sleep under the supervisor pid."""
    for d in descendants(pid):
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if TAG.encode() in f.read():
                    return d
        except OSError:
            pass
    return None


def wait_for(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release", help="directory with dmon")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=PATH",
                    help="another dmon binary to measure beside (repeatable), e.g. a different build")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--settle", type=float, default=3)
    ap.add_argument("--idle", type=float, default=60)
    ap.add_argument("--maps", action="store_true", help="per mapping, at the first moment")
    ap.add_argument("--json", help="write the figures to FILE")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="idle-memory.")
    sleep = os.path.join(work, f"sleep-{TAG}")
    os.symlink(shutil.which("sleep"), sleep)
    dmon = os.path.abspath(os.path.join(a.bin, "dmon"))
    procs = {}  # name -> (Popen, pid of the supervisor or None until known)
    devnull = subprocess.DEVNULL

    def spawn(name, argv, env=None):
        log = open(os.path.join(work, name.replace(" ", "_") + ".log"), "ab")
        procs[name] = subprocess.Popen(argv, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                       env=env)

    pid_files = {}
    load, statuses = os.path.join(work, "load"), []
    with open(load, "w") as f:
        f.write("0.1\n")
    for label, path in [("dmon", dmon)] + [tuple(x.split("=", 1)) for x in a.also]:
        path = os.path.abspath(path)
        spawn(f"{label} -n", [path, "-n", sleep, "100000"])
        name = f"{label} -p F … -- cat"
        pid_files[name] = os.path.join(work, f"{label}.pid")
        spawn(name, [path, "-p", pid_files[name], sleep, "100000", "--", "cat"])
        statuses.append(os.path.join(work, f"{label}.status"))
        spawn(f"{label} -n -L 5 -l 1", [path, "-n", "-L", "5", "-l", "1", "-I", statuses[-1], sleep, "100000"],
              env=dict(os.environ, DMON_LOADAVG_FILE=load))
    for tool in ("runsv", "s6-supervise", "supervise"):
        if shutil.which(tool) and not a.no_peers:
            d = os.path.join(work, f"svc-{tool}")
            os.makedirs(d)
            with open(os.path.join(d, "run"), "w") as f:
                f.write(f"#!/bin/sh\nexec {sleep} 100000\n")
            os.chmod(os.path.join(d, "run"), 0o755)
            spawn(tool, [tool, d])

    def pid_of(name):
        if name in pid_files:
            try:
                with open(pid_files[name]) as f:
                    return int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                return None
        return procs[name].pid

    moments = {}
    try:
        pids = {}
        for name in procs:
            pids[name] = wait_for(lambda: pid_of(name), 10)
            if not pids[name] or not wait_for(lambda: sleeper_of(pids[name]), 10):
                sys.exit(f"idle-memory: {name} did not start its command")
        time.sleep(a.settle)
        moments["settled"] = {n: rollup(p) for n, p in pids.items()}
        maps = {n: per_mapping(p) for n, p in pids.items()} if a.maps else None
        if a.idle > 0:
            time.sleep(a.idle)
            moments[f"after {a.idle:g} s idle"] = {n: rollup(p) for n, p in pids.items()}
        old = {n: sleeper_of(p) for n, p in pids.items()}
        for n, s in old.items():
            os.kill(s, signal.SIGKILL)
        for n, p in pids.items():
            if not wait_for(lambda: (s := sleeper_of(p)) and s != old[n], 15):
                print(f"idle-memory: {n} did not restart its command within 15 s", file=sys.stderr)
        time.sleep(a.settle)
        moments["after a restart"] = {n: rollup(p) for n, p in pids.items()}
        for n, p in pids.items():
            if n not in ("runsv", "s6-supervise", "supervise"):
                os.kill(p, signal.SIGUSR1)
        time.sleep(a.settle)
        moments["after a signal (USR1)"] = {n: rollup(p) for n, p in pids.items()}
        for value, record in (("9", "cmd pause"), ("0.1", "cmd resume")):
            with open(load, "w") as f:
                f.write(value + "\n")
            if not wait_for(lambda: all(record in open(st).read() for st in statuses), 15):
                print(f"idle-memory: no '{record}' within 15 s", file=sys.stderr)
        time.sleep(a.settle)
        moments["after a pause and resume"] = {n: rollup(p) for n, p in pids.items()}
    finally:
        for name, p in procs.items():
            pid = pid_of(name)
            for target in {pid, p.pid} - {None}:
                try:
                    os.kill(target, signal.SIGTERM)
                except OSError:
                    pass
        time.sleep(1)
        for p in procs.values():
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
        for name in os.listdir("/proc"):  # the sleepers, by their tagged name
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if name.isdigit() and TAG.encode() in f.read():
                        os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)

    for moment, rows in moments.items():
        print(f"\n{moment} (KiB)")
        print(f"{'supervisor':<30}" + "".join(f"{k:>15}" for k in FIELDS))
        for n, r in rows.items():
            print(f"{n:<30}" + "".join(f"{r.get(k, 0):>15}" for k in FIELDS))
    if maps:
        for n, m in maps.items():
            print(f"\n{n}, per mapping (KiB)")
            print(f"{'mapping':<30}" + "".join(f"{k:>15}" for k in FIELDS))
            for file, r in sorted(m.items(), key=lambda kv: -kv[1]["Rss"]):
                if r["Rss"]:
                    print(f"{file:<30}" + "".join(f"{r[k]:>15}" for k in FIELDS))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"moments": moments, "maps": maps}, f, indent=1)


if __name__ == "__main__":
    main()
