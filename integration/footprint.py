#!/usr/bin/env python3
"""What each supervised service costs: N instances of each supervisor, side by side.

    integration/footprint.py [--bin target/release] [--also LABEL=PATH] [-n 20]
                             [--settle 4] [--markdown]

Starts N instances of every supervisor, each on its own `sleep` (a link whose
name carries a tag, so that the clean-up finds it): `dmon -n`, `dmon -n -L 100`,
runsv, s6-supervise and daemontools' supervise (those installed). After
--settle seconds it reads /proc/PID/smaps_rollup of every instance and prints,
per instance, the mean Rss, Pss and USS (Private_Clean + Private_Dirty: what
the instance alone holds), with the ratio of each to s6-supervise's. Then, for
one `dmon -n`, where its private pages are, mapping by mapping.

A host runs one supervisor per service, so the shared text of a binary is paid
once; what grows with the number of services is the private memory, which
USS counts, and Pss, which shares each shared page among its mappers. Run as
root (dmon makes cgroups), after `sync`: a freshly built binary's pages, still
dirty in the page cache, show as private.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TAG = f"footprint{os.getpid()}"
PEERS = ("runsv", "s6-supervise", "supervise")


def rollup(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                out[key] = int(rest.split()[0])
    out["USS"] = out.get("Private_Clean", 0) + out.get("Private_Dirty", 0)
    return out


def private_by_mapping(pid):
    """[(KiB private, mapping)] of one process, largest first."""
    rows, name, perms = {}, None, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split()
            if "-" in first[0] and ":" not in first[0]:
                perms = first[1]
                name = first[5] if len(first) > 5 else "[anon]"
                name = f"{os.path.basename(name) if name.startswith('/') else name} {perms}"
            elif first[0] in ("Private_Clean:", "Private_Dirty:"):
                rows[name] = rows.get(name, 0) + int(first[1])
    return sorted(((kib, n) for n, kib in rows.items() if kib), reverse=True)


def has_child(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return bool(f.read().split())
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release", help="directory with dmon")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=PATH",
                    help="another dmon binary to measure beside (repeatable)")
    ap.add_argument("-n", type=int, default=20, help="instances of each supervisor")
    ap.add_argument("--settle", type=float, default=4)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="footprint.")
    sleep = os.path.join(work, f"sleep-{TAG}")
    os.symlink(shutil.which("sleep"), sleep)
    kinds = {}  # label -> [argv of each instance]
    for label, path in [("dmon", os.path.join(a.bin, "dmon"))] + [tuple(x.split("=", 1)) for x in a.also]:
        path = os.path.abspath(path)
        kinds[f"{label} -n"] = [[path, "-n", sleep, "100000"]] * a.n
        kinds[f"{label} -n -L 100"] = [[path, "-n", "-L", "100", sleep, "100000"]] * a.n
    for tool in PEERS:
        if shutil.which(tool):
            argvs = []
            for i in range(a.n):
                d = os.path.join(work, f"{tool}-{i}")
                os.makedirs(d)
                with open(os.path.join(d, "run"), "w") as f:
                    f.write(f"#!/bin/sh\nexec {sleep} 100000\n")
                os.chmod(os.path.join(d, "run"), 0o755)
                argvs.append([tool, d])
            kinds[tool] = argvs
    procs = {label: [] for label in kinds}
    try:
        for label, argvs in kinds.items():
            for argv in argvs:
                procs[label].append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                     stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 20
        while not all(has_child(p.pid) for ps in procs.values() for p in ps):
            if time.monotonic() > deadline:
                sys.exit("footprint: not every supervisor started its command within 20 s")
            time.sleep(0.1)
        time.sleep(a.settle)
        figures = {label: [rollup(p.pid) for p in ps] for label, ps in procs.items()}
        first = procs["dmon -n"][0].pid
        where = private_by_mapping(first)
    finally:
        for ps in procs.values():
            for p in ps:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except OSError:
                    pass
        time.sleep(1)
        for ps in procs.values():
            for p in ps:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait()
        for name in os.listdir("/proc"):
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if name.isdigit() and TAG.encode() in f.read():
                        os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)

    mean = {label: {k: sum(r[k] for r in rows) / len(rows) for k in ("Rss", "Pss", "USS")}
            for label, rows in figures.items()}
    base = mean.get("s6-supervise")
    print(f"\n{a.n} instances each; per instance, KiB (ratio to s6-supervise)\n")
    print("| supervisor | Rss | Pss | private (USS) |\n|---|---:|---:|---:|")
    for label, m in mean.items():
        cell = lambda k: f"{m[k]:.0f}" + (f" ({m[k] / base[k]:.2f})" if base else "")
        print(f"| {label} | {cell('Rss')} | {cell('Pss')} | {cell('USS')} |")
    print(f"\nwhere one `dmon -n`'s private pages are (KiB)\n")
    print("| mapping | private |\n|---|---:|")
    for kib, name in where:
        print(f"| {name} | {kib} |")


if __name__ == "__main__":
    main()
