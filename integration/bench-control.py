#!/usr/bin/env python3
"""Control under saturation: how long the real dmon binary takes to stop (-L)
and to kill (-t) a tree of N processes, per backend, sleeping and busy, beside
the floor (the same kernel operation made directly by this script) and a peer
(coreutils timeout, which signals the command's process group).

    sudo integration/bench-control.py                  # sizes 10 100 1000
    sudo integration/bench-control.py --sizes 10,100 --backends signals --kinds busy
    sudo integration/bench-control.py --sizes 1000 --kinds busy --repeat 20 --dmon-only   # tails

This observer runs at real-time priority (SCHED_FIFO 10) and sleeps between its
looks, so that it measures dmon, which runs at normal priority, and not its own
starvation behind a busy tree.

- stop: from dmon's `cmd pause` record (written when it decides, before the
  freeze) until the tree is fully stopped: `frozen 1` in cgroup.events (v2),
  FROZEN in freezer.state (v1), every process in state T (signals);
- kill: from the `cmd timeout` record until no process of the run is left
  (a zombie counts as gone: it no longer runs); the tree does not trap TERM;
- floor: this script freezes (cgroup.freeze, freezer.state, kill(-pgrp, STOP)
  and STOP to the others) and kills (cgroup.kill; freeze, KILL, thaw; KILL to
  the group and the others) the same tree itself.

Each tree has two members that double-fork with setsid, which a process-group
signal does not reach: the peer's figure says how many survived.
Figures are for one machine; read them as ratios.
"""

import argparse
import ctypes
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V2 = "/sys/fs/cgroup/unified" if os.path.exists("/sys/fs/cgroup/unified/cgroup.procs") else "/sys/fs/cgroup"
FREEZER = "/sys/fs/cgroup/freezer"
LOOK = 0.0005  # between two looks of the observer

# Every member waits in a read of one pipe until the observer closes its end
# (so that a tree of 1000 busy processes does not take minutes to fork). The
# main shell opens the FIFO once and the members inherit it: a thousand opens
# of the FIFO itself, let go by one writer's open, left some of them asleep in
# the open for seconds on Linux 6.18, however often a writer came again.
TREE = """exec 3<{go}
i=2; while [ $i -lt {size} ]; do ( read x <&3; {body} ) & i=$((i+1)); done
( setsid sh -c 'read x <&3; {body}' {tag} & ); ( setsid sh -c 'read x <&3; {body}' {tag} & )
read x <&3; {body}
"""
BODY = {"busy": "while :; do :; done", "sleep": "while :; do sleep 1; done"}


def now():
    return time.monotonic()


def stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split(" ", 1)[0]


def tagged(tag, prefix=False):
    """Pids of the live members of the tree `tag` (or of every tree whose tag
    starts so): the shells whose command line carries it (not dmon or a peer,
    whose arguments carry it too)."""
    want = tag.encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if argv[0] != b"sh" or not any(x == want or prefix and x.startswith(want) for x in argv):
                continue
        except OSError:
            continue
        if stat(name) not in (None, "Z", "X"):
            out.append(int(name))
    return out


def wait_tree(tag, size, timeout=120, late=lambda: False):
    """Waits until the tree has grown and every member waits on the pipe,
    then lets them all go at once and waits until none waits any more. None
    once `late()` says the tree's time limit came first.

    Members let go before the rest has reached the pipe would spin while the
    others still make their way to it, and the last of a busy tree of 1000
    would then take tens of seconds to get there."""
    end = now() + timeout
    gate = None
    pids, waiting = [], 0
    try:
        while now() < end:
            if late():
                return None
            if gate is None:
                try:  # the main shell has the FIFO open for reading
                    gate = os.open(GO[tag], os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    pass
            pids = tagged(tag)
            waiting = sum(waits(p) for p in pids)
            if gate is not None and len(pids) >= size and waiting == len(pids):
                break
            time.sleep(0.05)
        else:
            raise NotStarted(f"the tree {tag} did not grow to {size} waiting members "
                             f"(has {len(pids)}, {waiting} waiting)")
    finally:
        if gate is not None:
            os.close(gate)  # the readers get EOF: the tree starts
    while now() < end:
        time.sleep(0.2)
        if not any(waits(p) for p in pids):
            time.sleep(0.5)  # busy members are all running now
            return None if late() else pids
    waiting = sum(waits(p) for p in pids)
    raise NotStarted(f"the tree {tag} did not start: {waiting} of {len(pids)} members still wait to be let go")


def waits(pid):
    return read(f"/proc/{pid}/wchan") in ("pipe_read", "anon_pipe_read")


class NotStarted(Exception):
    pass


def again(measure, *args):
    """`measure(*args)`, a second time if its tree did not start."""
    try:
        return measure(*args)
    except NotStarted as e:
        print(f"bench-control: {e}; again", file=sys.stderr)
        return measure(*args)


def until(pred, timeout=60):
    end = now() + timeout
    while now() < end:
        if pred():
            return now()
        time.sleep(LOOK)
    return None


class Remaining:
    """Whether every process of `pids` is in one of `states`. Each look reads
    only those not yet seen so (stopped or dead processes stay so here), which
    keeps the observer's own looks short."""

    def __init__(self, pids, states):
        self.left, self.states = list(pids), states

    def __call__(self):
        self.left = [p for p in self.left if stat(p) not in self.states]
        return not self.left


GONE = (None, "Z", "X")
STOPPED = ("T", "t")


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def frozen(backend, leaf, pids):
    """A look that says whether the tree is fully stopped."""
    if backend == "cgroup2":
        return lambda: "frozen 1" in read(f"{leaf}/cgroup.events")
    if backend == "freezer":
        return lambda: read(f"{leaf}/freezer.state").strip() == "FROZEN"
    return Remaining(pids, STOPPED + GONE)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def leaf_of(pid, backend):
    """The cgroup directory of `pid` in the backend's hierarchy."""
    for line in read(f"/proc/{pid}/cgroup").splitlines():
        num, controllers, path = line.split(":", 2)
        if backend == "cgroup2" and num == "0" and controllers == "":
            return V2 + path
        if backend == "freezer" and "freezer" in controllers.split(","):
            return FREEZER + path
    return None


class Dmon:
    def __init__(self, work, backend, tag, extra):
        self.status = os.path.join(work, f"status-{tag}")
        self.load = os.path.join(work, "load")
        write(self.load, "0.1\n")
        env = dict(os.environ, DMON_LOADAVG_FILE=self.load)
        script = os.path.join(work, "tree.sh")
        argv = [DMON, "-n", "--tree", backend, "--grace", "1", "-I", self.status] + extra + ["sh", script, tag]
        # Normal priority for dmon: undo the observer's real-time class.
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stderr=None if os.environ.get("BENCH_DEBUG") else subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0)),
        )

    def record(self, word):
        return word in read(self.status)

    def end(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def dmon_stop(work, backend, size, kind):
    tag = f"bc-{os.getpid()}-stop-{backend}-{kind}-{size}-{next(RUNS)}"
    settle()
    make_tree(work, size, kind, tag)
    d = Dmon(work, backend, tag, ["-L", "5", "-l", "1"])
    try:
        pids = wait_tree(tag, size)
        leaf = leaf_of(pids[0], backend)
        done = frozen(backend, leaf, pids)
        write(d.load, "9\n")
        t0 = until(lambda: d.record("cmd pause"))
        t1 = until(done)
        return None if t0 is None or t1 is None else t1 - t0
    finally:
        d.end()
        reap()


def limits(size):
    """Time limits for a tree of `size`: long enough for it to grow first, and
    longer ones for a machine too loaded to grow it in time."""
    limit = 5 if size < 500 else 10
    while limit <= 160:
        yield limit
        limit *= 2
    raise SystemExit(f"bench-control: a tree of {size} did not grow within 160 s")


def dmon_kill(work, backend, size, kind):
    # A timeout that came before the tree was whole would time the death of
    # what is left of it: measured again with a longer limit.
    for limit in limits(size):
        tag = f"bc-{os.getpid()}-kill-{backend}-{kind}-{size}-{limit}-{next(RUNS)}"
        settle()
        make_tree(work, size, kind, tag)
        # -m 0: no next run to compete.
        d = Dmon(work, backend, tag, ["-t", str(limit), "-m", "0"])
        try:
            pids = wait_tree(tag, size, late=lambda: d.record("cmd timeout"))
            if pids is None:
                print(f"bench-control: {tag}: the limit came before the tree was whole; again", file=sys.stderr)
                continue
            t0 = until(lambda: d.record("cmd timeout"), limit + 30)
            t1 = until(Remaining(pids, GONE))
            return None if t0 is None or t1 is None else t1 - t0
        finally:
            d.end()
            reap()


def peer_kill(work, size, kind):
    """coreutils timeout: TERM to its process group when the time is up."""
    for limit in limits(size):
        tag = f"bc-{os.getpid()}-peer-{kind}-{size}-{limit}-{next(RUNS)}"
        settle()
        make_tree(work, size, kind, tag)
        start = now()
        proc = subprocess.Popen(["timeout", str(limit), "sh", os.path.join(work, "tree.sh"), tag],
                                preexec_fn=lambda: os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0)))
        try:
            pids = wait_tree(tag, size, late=lambda: now() >= start + limit)
        except NotStarted:
            proc.kill()
            for p in survivors(tagged(tag)):
                send(p, signal.SIGKILL)
            proc.wait()
            reap()
            raise
        # The two setsid'd members are out of its reach: done when the rest is gone.
        t1 = None if pids is None else until(lambda: len(survivors(pids)) <= 2, limit + 30)
        proc.wait()
        time.sleep(0.5)
        left = survivors(tagged(tag) if pids is None else pids)
        for p in left:
            send(p, signal.SIGKILL)
        reap()
        if pids is None:
            print(f"bench-control: {tag}: the limit came before the tree was whole; again", file=sys.stderr)
        else:
            return (None if t1 is None else t1 - (start + limit)), len(left)


def send(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def survivors(pids):
    return [p for p in pids if stat(p) not in GONE]


def floor(work, backend, size, kind):
    """The same stop and kill, made by this script itself."""
    tag = f"bc-{os.getpid()}-floor-{backend}-{kind}-{size}-{next(RUNS)}"
    settle()
    make_tree(work, size, kind, tag)
    leaf = None
    if backend in ("cgroup2", "freezer"):
        leaf = os.path.join(V2 if backend == "cgroup2" else FREEZER, tag)
        os.mkdir(leaf)
    procs = f"{leaf}/cgroup.procs" if leaf else None

    def child():
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        os.setpgid(0, 0)
        if procs:
            write(procs, "0")

    proc = subprocess.Popen(["sh", os.path.join(work, "tree.sh"), tag], preexec_fn=child)
    try:
        pids = wait_tree(tag, size)
        done = frozen(backend, leaf, pids)
        t0 = now()
        if backend == "cgroup2":
            write(f"{leaf}/cgroup.freeze", "1")
        elif backend == "freezer":
            write(f"{leaf}/freezer.state", "FROZEN")
        else:
            os.killpg(proc.pid, signal.SIGSTOP)
            for p in pids:
                send(p, signal.SIGSTOP)
        t1 = until(done)
        stop = None if t1 is None else t1 - t0
        # Running again before the kill, as dmon's tree is at a timeout.
        if backend == "cgroup2":
            write(f"{leaf}/cgroup.freeze", "0")
        elif backend == "freezer":
            write(f"{leaf}/freezer.state", "THAWED")
        else:
            for p in pids:
                send(p, signal.SIGCONT)
        time.sleep(0.5)
        done = Remaining(pids, GONE)
        t0 = now()
        if backend == "cgroup2":
            write(f"{leaf}/cgroup.kill", "1")
        elif backend == "freezer":
            while read(procs).split():
                write(f"{leaf}/freezer.state", "FROZEN")
                until(lambda: read(f"{leaf}/freezer.state").strip() == "FROZEN", 1)
                for p in read(procs).split():
                    send(int(p), signal.SIGKILL)
                write(f"{leaf}/freezer.state", "THAWED")
                until(lambda: not read(procs).split(), 0.1)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            for p in pids:
                send(p, signal.SIGKILL)
        t1 = until(done)
        kill = None if t1 is None else t1 - t0
        return stop, kill
    finally:
        for p in survivors(tagged(tag)):
            send(p, signal.SIGKILL)
        proc.wait()
        reap()
        if leaf:
            until(lambda: not read(procs).split(), 10)
            os.rmdir(leaf)


GO = {}
# Each measurement's tree, status file and FIFO have a name of their own: a
# status file kept from an earlier run would hold its records ("cmd pause",
# "cmd timeout") before this run's dmon has written any.
RUNS = itertools.count()


def settle(timeout=120):
    """Waits until no tree of this benchmark is left and the machine has had
    at most 2 runnable tasks for a second, so that a measurement does not
    compete with the end of the one before it."""
    mine = f"bc-{os.getpid()}-"
    calm, end = None, now() + timeout
    while now() < end:
        if tagged(mine, prefix=True):
            calm = None
        elif calm is None:
            calm = now()
        elif now() - calm >= 1:
            return
        if running() > 3:  # this observer and one other
            calm = None
        time.sleep(0.05)
    print(f"bench-control: the machine did not settle within {timeout} s "
          f"({len(tagged(mine, prefix=True))} processes of earlier trees, {running()} runnable)", file=sys.stderr)


def running():
    for line in read("/proc/stat").splitlines():
        if line.startswith("procs_running "):
            return int(line.split()[1])
    return 0


def make_tree(work, size, kind, tag):
    GO[tag] = os.path.join(work, f"go-{tag}")
    if os.path.exists(GO[tag]):  # measured again
        os.unlink(GO[tag])
    os.mkfifo(GO[tag])
    write(os.path.join(work, "tree.sh"), TREE.format(size=size, body=BODY[kind], tag=tag, go=GO[tag]))


def ms(x):
    return "-" if x is None else f"{x * 1000:.1f}"


def ratio(x, base):
    return "-" if x is None or not base else f"{x / base:.1f}x"


def main():
    global DMON
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10,100,1000")
    p.add_argument("--backends", default="cgroup2,freezer,signals")
    p.add_argument("--kinds", default="sleep,busy")
    p.add_argument("--dmon", default=os.path.join(ROOT, "target/release/dmon"))
    p.add_argument("--json", help="also write the rows to this file (for integration/bench.py)")
    p.add_argument("--repeat", type=int, default=1,
                   help="measure dmon's stop and kill this many times per case (the tails: median, p95, max)")
    p.add_argument("--dmon-only", action="store_true", help="no floor and no peer, dmon's own times only")
    a = p.parse_args()
    DMON = a.dmon
    if os.geteuid() != 0:
        raise SystemExit("bench-control: needs root (cgroups, real-time priority)")
    if not os.path.exists(DMON):
        subprocess.run(["cargo", "build", "-q", "--release", "--bin", "dmon"], cwd=ROOT, check=True)
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    # Orphans of the floor's trees are re-parented here and reaped.
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    peer = subprocess.run(["sh", "-c", "command -v timeout"], capture_output=True).returncode == 0
    print(f"observer: SCHED_FIFO 10, looks every {LOOK * 1000:.1f} ms; dmon: {DMON} at normal priority")
    print(f"{'backend':8} {'kind':5} {'procs':>5} | {'stop ms':>8} {'floor':>6} {'ratio':>6} | "
          f"{'kill ms':>8} {'floor':>6} {'ratio':>6} | {'timeout(1)':>10} {'left':>4}")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o755)
        for kind in a.kinds.split(","):
            for size in map(int, a.sizes.split(",")):
                measure_peer = peer and not a.dmon_only
                peer_ms, left = again(peer_kill, work, size, kind) if measure_peer else (None, None)
                for backend in a.backends.split(","):
                    f_stop, f_kill = (None, None) if a.dmon_only else again(floor, work, backend, size, kind)
                    for _ in range(a.repeat):
                        stop = again(dmon_stop, work, backend, size, kind)
                        kill = again(dmon_kill, work, backend, size, kind)
                        print(f"{backend:8} {kind:5} {size:5} | {ms(stop):>8} {ms(f_stop):>6} {ratio(stop, f_stop):>6} | "
                              f"{ms(kill):>8} {ms(f_kill):>6} {ratio(kill, f_kill):>6} | {ms(peer_ms):>10} "
                              f"{'-' if left is None else left:>4}", flush=True)
                        rows.append(dict(backend=backend, kind=kind, size=size, stop=stop, stop_floor=f_stop,
                                         kill=kill, kill_floor=f_kill, peer_kill=peer_ms, peer_left=left))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f)


if __name__ == "__main__":
    sys.exit(main())
