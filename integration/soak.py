#!/usr/bin/env python3
"""Soak: over thousands of restarts and pauses nothing of dmon's grows, no line
of the log pipe is lost, and every TERM ends dmon.

    sudo integration/soak.py                  # the full soak, some minutes
    sudo integration/soak.py --quick          # small counts, about 30 s
    sudo integration/soak.py --cases a,d --dmon target/release/dmon
    sudo integration/soak.py --cases a,b --tree freezer    # the v1 freezer's leaves

a. restarts: `dmon -n -m N --backoff-max 0 false` crashes N times (10,000);
   every N/10 restarts (counted from dmon's -I records) dmon's open
   descriptors (/proc/PID/fd), its VmRSS and the cgroup directories under its
   own cgroup (dmon.PID, found from /proc/PID/cgroup) are sampled;
b. pauses: a busy tree of 100 processes (at nice 19, so that the observer and
   dmon keep the CPU) is paused and resumed 1000 times through --control's
   FIFO (runit's letters p and c); each cycle waits until the cgroup says
   `frozen 1` and every process of the tree sits frozen (state S in
   get_signal), then until every one runs again (state R); the same samples;
c. log: the command writes numbered lines, one every millisecond, for 60 s
   into dmon's pipe; the log command (dlog) is signalled every 10 ms, found by
   its `log start PID` record: with TERM no line may be lost or repeated; with
   KILL none may be lost (dlog's tee(2) design may store one batch twice, which
   is counted and shown);
d. TERM: dmons that restart `true` as fast as they can get TERM at random
   moments, in the foreground (-n), as daemons (-p, TERM to the pid in the pid
   file) and as daemons whose detaching parent, the process the caller
   started, gets the TERM (stopped with STOP around it, so that it cannot exit
   in between; one that had exited already, its daemon ready, counts apart and
   its daemon gets the TERM); each must be gone 5 s later, else it is
   counted, killed and reported. Also in the foreground with TERM inherited
   ignored (a shell's `trap '' TERM` before exec), from the pid file's
   appearance on. A dmon that got TERM before it supervised
   and died of it would leave its cgroup for the next dmon: counted too.

A sample counts the descriptors open through a window of looks (at least 20 ms
and three restarts): a start's own descriptors come and go within it. The run
is flat when no sample's count is above the most the first window saw in any
one look (a start's included), the cgroups equal the first sample's, and the
RSS stays within 64 KiB above the first sample's (which comes after the first
tenth of the run, once the allocator has its working set). Exits 1 when a case
fails its check. Counts only: other work on the machine changes timings, which
are not figures here. Run as root (dmon makes cgroups).
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V2 = "/sys/fs/cgroup/unified" if os.path.exists("/sys/fs/cgroup/unified/cgroup.procs") else "/sys/fs/cgroup"
RSS_SLACK_KIB = 64
END_WITHIN = 5.0
QUIET = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def now():
    return time.monotonic()


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def state(pid):
    """The state letter of a process, None once it is gone."""
    text = read(f"/proc/{pid}/stat")
    return None if text is None else text[text.rfind(")") + 2]


def gone(pid):
    return state(pid) in (None, "Z", "X")


def until(pred, timeout):
    end = now() + timeout
    pause = 0.0005
    while now() < end:
        if pred():
            return True
        time.sleep(pause)
        pause = min(pause * 2, 0.02)
    return pred()


FREEZER = "/sys/fs/cgroup/freezer"
# The backend cases a and b give dmon (--tree): its own cgroups are looked for
# in that hierarchy, v2's or the v1 freezer's.
TREE_BACKEND = "auto"


def cgroup_of(pid, v1=False):
    """The cgroup directory of `pid` in v2, or with `v1` in the v1 freezer."""
    for line in (read(f"/proc/{pid}/cgroup") or "").splitlines():
        num, controllers, path = line.split(":", 2)
        if not v1 and num == "0" and controllers == "":
            return V2 + path.rstrip("/")
        if v1 and "freezer" in controllers.split(","):
            return FREEZER + path.rstrip("/")
    return None


def own_cgroup(pid):
    """dmon's own cgroup directory (dmon.PID): the parent of the `supervisor`
    leaf it moves into once it has made it; None before. In the v1 freezer's
    hierarchy under `--tree freezer`."""
    path = cgroup_of(pid, v1=TREE_BACKEND == "freezer")
    return os.path.dirname(path) if path and os.path.basename(path) == "supervisor" else None


def cgroup_dirs(top):
    return sum(len(dirs) for _, dirs, _ in os.walk(top)) if top and os.path.isdir(top) else None


def open_fds(pid):
    out = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.add((name, os.readlink(f"/proc/{pid}/fd/{name}")))
        except OSError:
            pass
    return out


def sample(pid, home, progress=lambda: 0):
    """(open descriptors, VmRSS KiB, cgroup directories under dmon.PID). The
    descriptors counted are those open in every look of 20 ms: in a crash loop
    dmon is nearly always in the middle of a start, with the start's own open
    (the v1 leaves' cgroup.procs the child joins, the exec report pipe, the
    leaf's cpu.stat read at the exit), each closed again a moment later, while
    a leaked one stays. `progress()` counts restarts: the looks go on until
    three more came (on a busy machine 20 ms may see none)."""
    fds, most, end, start, bound = None, 0, now() + 0.02, progress(), now() + 5
    while fds is None or (now() < end or progress() < start + 3) and now() < bound:
        try:
            seen = open_fds(pid)
        except OSError:
            return None
        fds, most = (seen if fds is None else fds & seen), max(most, len(seen))
    fds = (len(fds), most)
    status = (read(f"/proc/{pid}/status") or "").splitlines()
    rss = next((int(l.split()[1]) for l in status if l.startswith("VmRSS:")), None)
    return (fds, rss, cgroup_dirs(home))


def flatness(samples):
    """Figures and verdict of a list of (count, (fds, rss, cgroups))."""
    if len(samples) < 2:
        return dict(flat=False, why="fewer than two samples"), False
    first = samples[0][1]
    fds = [s[0][0] for _, s in samples]
    busiest = first[0][1]
    rss = [s[1] for _, s in samples]
    cgs = [s[2] for _, s in samples]
    growth = max(rss) - first[1]
    ok = max(fds) <= busiest and all(c == first[2] for c in cgs) and growth <= RSS_SLACK_KIB
    fig = dict(samples=len(samples), at=[n for n, _ in samples],
               fds=dict(first=fds[0], last=fds[-1], max=max(fds), first_busiest=busiest),
               rss_kib=dict(first=rss[0], last=rss[-1], max=max(rss), growth=growth),
               cgroups=dict(first=cgs[0], last=cgs[-1], max=max(cgs)), flat=ok)
    return fig, ok


def show_flat(fig):
    if "fds" not in fig:
        return fig.get("why", "")
    f, r, c = fig["fds"], fig["rss_kib"], fig["cgroups"]
    return (f"fds {f['first']}/{f['last']}/{f['max']} (first window's busiest look {f['first_busiest']}), RSS KiB {r['first']}/{r['last']}/{r['max']} "
            f"(+{r['growth']}), cgroups {c['first']}/{c['last']}/{c['max']} (first/last/max, "
            f"{fig['samples']} samples): {'flat' if fig['flat'] else 'NOT FLAT'}")


class Status:
    """dmon's -I file, read as it grows."""

    def __init__(self, path):
        self.path, self.offset, self.tail, self.lines = path, 0, "", []

    def poll(self):
        try:
            with open(self.path) as f:
                f.seek(self.offset)
                text = f.read()
                self.offset = f.tell()
        except OSError:
            return []
        text = self.tail + text
        new = text.split("\n")
        self.tail = new.pop()
        self.lines.extend(new)
        return new


def stop(proc):
    """Ends a dmon this script started (TERM, then KILL of its group)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def restarts(work, dmon, count):
    status = os.path.join(work, "a.status")
    proc = subprocess.Popen([dmon, "-n", "--tree", TREE_BACKEND, "-m", str(count), "--backoff-max", "0", "-I", status, "false"],
                            start_new_session=True, **QUIET)
    watch, step, samples, home = Status(status), max(count // 10, 1), [], None
    starts = [0]

    def progress():
        starts[0] += sum(l.startswith("cmd start ") for l in watch.poll())
        return starts[0]

    try:
        while proc.poll() is None:
            n = progress()
            home = home or own_cgroup(proc.pid)
            # Not around the last run: dmon then removes its cgroups and ends.
            if (len(samples) + 1) * step <= n <= count - step // 2:
                s = sample(proc.pid, home, progress)
                if s and None not in s and proc.poll() is None:
                    samples.append((n, s))
            time.sleep(0.002)
        progress()
    finally:
        stop(proc)
    starts = starts[0]
    fig, ok = flatness(samples)
    fig.update(restarts=starts - 1, exit=proc.returncode)
    ok = ok and starts == count + 1 and proc.returncode == 1
    print(f"a. {starts - 1} restarts of false (exit {proc.returncode}): {show_flat(fig)}", flush=True)
    return fig, ok


TREE = ("exec nice -n 19 sh -c 'i=1; while [ $i -lt {size} ]; do (while :; do :; done) & i=$((i+1)); done; "
        "while :; do :; done'")


def pauses(work, dmon, cycles, size=100):
    svc = os.path.join(work, "b.svc")
    os.makedirs(svc)
    proc = subprocess.Popen([dmon, "-n", "--tree", TREE_BACKEND, "--control", svc, "sh", "-c", TREE.format(size=size)],
                            start_new_session=True, **QUIET)
    control = os.path.join(svc, "supervise", "control")
    samples, failed, step = [], [], max(cycles // 10, 1)
    try:
        if not until(lambda: own_cgroup(proc.pid) and os.path.exists(control), 10):
            raise SystemExit("soak: dmon --control did not come up within 10 s")
        home = own_cgroup(proc.pid)
        leaf = os.path.join(home, "cmd")

        def pids():
            return [int(p) for p in (read(os.path.join(leaf, "cgroup.procs")) or "").split()]

        if not until(lambda: len(pids()) >= size and all(state(p) == "R" for p in pids()), 60):
            raise SystemExit(f"soak: the tree did not grow to {size} running processes within 60 s")

        def letter(c):
            fd = os.open(control, os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.write(fd, c)
            finally:
                os.close(fd)

        v1 = TREE_BACKEND == "freezer"
        # Where a frozen process sleeps: v2 stops it in get_signal, the v1
        # freezer in __refrigerator.
        stopped_in = "__refrigerator" if v1 else "get_signal"

        def says(frozen):
            if v1:
                return (read(os.path.join(leaf, "freezer.state")) or "").strip() == ("FROZEN" if frozen else "THAWED")
            return f"frozen {int(frozen)}" in (read(os.path.join(leaf, "cgroup.events")) or "")

        def frozen():
            if not says(True):
                return False
            ps = pids()
            return len(ps) == size and all(state(p) in "SD" and read(f"/proc/{p}/wchan") == stopped_in for p in ps)

        def running():
            ps = pids()
            return says(False) and len(ps) == size and all(state(p) == "R" for p in ps)

        for cycle in range(1, cycles + 1):
            letter(b"p")
            if not until(frozen, 10):
                failed.append((cycle, "pause"))
            letter(b"c")
            if not until(running, 10):
                failed.append((cycle, "resume"))
            if cycle % step == 0:
                # Once the thaw's thread, which has cgroup.freeze open, is done.
                until(lambda: len(os.listdir(f"/proc/{proc.pid}/task")) == 1, 10)
                samples.append((cycle, sample(proc.pid, home)))
            if len(failed) > 5:
                break
    finally:
        stop(proc)
    fig, ok = flatness(samples)
    fig.update(cycles=cycle, processes=size, failed=failed[:10])
    ok = ok and not failed
    print(f"b. {cycle} pause/resume cycles of {size} busy processes, {len(failed)} not fully stopped or "
          f"resumed{' ' + str(failed[:5]) if failed else ''}: {show_flat(fig)}", flush=True)
    return fig, ok


WRITER = """import os, sys, time
n = int(sys.argv[1]); t0 = time.monotonic()
for i in range(n):
    os.write(1, b"%d\\n" % i)
    pause = t0 + (i + 1) / 1000 - time.monotonic()
    if pause > 0:
        time.sleep(pause)
"""


def logs(work, dmon, seconds, sig):
    name = signal.Signals(sig).name
    out = os.path.join(work, f"c.{name}.log")
    status = os.path.join(work, f"c.{name}.status")
    dlog = os.path.join(os.path.dirname(dmon), "dlog")
    lines = int(seconds * 1000)
    proc = subprocess.Popen([dmon, "-n", "-1", "--backoff-max", "0", "-I", status,
                             sys.executable, "-c", WRITER, str(lines), "--", dlog, "-b", out],
                            start_new_session=True, **QUIET)
    watch, logger, kills, done = Status(status), None, 0, False
    try:
        next_kill = now() + 0.01
        while not done and proc.poll() is None:
            for line in watch.poll():
                if line.startswith("log start "):
                    logger = int(line.split()[2])
                done = done or line.startswith("cmd exit ")
            if logger and now() >= next_kill:
                try:
                    os.kill(logger, sig)
                    kills += 1
                except ProcessLookupError:
                    pass
                logger, next_kill = None, now() + 0.01
            time.sleep(0.001)
        proc.wait(120)
    finally:
        stop(proc)
    seen = []
    for line in (read(out) or "").splitlines():
        try:
            seen.append(int(line.split()[-1]))
        except (ValueError, IndexError):
            pass
    unique = set(seen)
    lost = sum(1 for i in range(lines) if i not in unique)
    dups = len(seen) - len(unique)
    restarts = sum(l.startswith("log start ") for l in watch.lines)
    ok = lost == 0 and proc.returncode == 0 and (dups == 0 or sig == signal.SIGKILL)
    fig = dict(signal=name, lines=lines, kills=kills, log_starts=restarts, lost=lost, duplicated=dups,
               exit=proc.returncode)
    print(f"c. {lines} lines, the log command sent {name} {kills} times ({restarts} log starts): "
          f"{lost} lost, {dups} duplicated, dmon exit {proc.returncode}: {'ok' if ok else 'FAILED'}", flush=True)
    return fig, ok


def ours(tag):
    """Live processes whose command line carries `tag` (a pid file's path)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            argv = read(f"/proc/{name}/cmdline")
            if argv and tag in argv.split("\0") and not gone(name):
                out.append(int(name))
    return out


def remove_cgroup(top):
    """Removes an empty dmon.PID left by a dmon this script killed."""
    for path, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
        try:
            os.rmdir(path)
        except OSError:
            pass


def terms(work, dmon, tries, mode):
    """TERM at a random moment to a dmon restarting `true`; how many did not end."""
    parent = cgroup_of(os.getpid()) or V2
    late, killed_by_term, exits, left_cgroups, ready = [], 0, {}, 0, 0
    for i in range(tries):
        pid_file = os.path.join(work, f"d.{mode}.{i}.pid")
        argv = [dmon, "--backoff-max", "0", "-p", pid_file, "true"]
        if mode == "foreground":
            argv.insert(1, "-n")
        if mode == "ignored":
            argv = ["sh", "-c", "trap '' TERM INT; exec \"$0\" \"$@\"", dmon, "-n"] + argv[1:]
        proc = subprocess.Popen(argv, start_new_session=True, **QUIET)
        target = proc.pid
        if mode == "foreground":
            time.sleep(random.uniform(0, 0.05))
        elif mode == "ignored":
            # From the pid file on, made early in dmon's start-up: before it,
            # the shell and the loader run, and the ignored TERM is theirs.
            until(lambda: os.path.exists(pid_file), 10)
            time.sleep(random.uniform(0, 0.01))
        elif mode == "daemon":
            # The daemon writes its pid before anything starts: from then on,
            # any moment up to well into its restart loop.
            until(lambda: (read(pid_file) or "").endswith("\n"), 10)
            target = int(read(pid_file) or proc.pid)
            time.sleep(random.uniform(0, 0.02))
        else:  # parent: the detaching parent waits until the daemon is ready
            time.sleep(random.uniform(0, 0.006))
            # Stopped, the parent cannot exit between the look and the TERM: a
            # TERM to a parent that had already exited (the daemon was ready)
            # would be meant for no one.
            os.kill(target, signal.SIGSTOP)
            until(lambda: state(target) in ("T", "Z", None), 5)
            if state(target) != "T":
                ready += 1
                target = int(read(pid_file) or 0) or target
        os.kill(target, signal.SIGTERM)
        if mode == "parent" and target == proc.pid:
            os.kill(target, signal.SIGCONT)
        sent = now()
        ended = until(lambda: proc.poll() is not None and gone(target) and not ours(pid_file), END_WITHIN)
        if ended:
            exits[proc.returncode] = exits.get(proc.returncode, 0) + 1
            if target == proc.pid and proc.returncode == -signal.SIGTERM:
                killed_by_term += 1
        else:
            left = ours(pid_file)
            late.append(dict(try_=i, after_s=round(now() - sent, 1), left=left))
            for pid in left:
                home = own_cgroup(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                until(lambda: gone(pid), 5)
                if home and os.path.basename(home).startswith("dmon."):
                    until(lambda: "populated 0" in (read(os.path.join(home, "cmd", "cgroup.events")) or ""), 5)
                    remove_cgroup(home)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        proc.wait()
        # A dmon that ended by TERM's default action (before its signalfd was
        # made) leaves its cgroup for the next dmon to remove: counted, removed.
        for pid in {proc.pid, target}:
            home = os.path.join(parent, f"dmon.{pid}")
            if os.path.isdir(home):
                left_cgroups += 1
                remove_cgroup(home)
        for path in (pid_file, pid_file + ".lock"):
            try:
                os.unlink(path)
            except OSError:
                pass
    fig = dict(mode=mode, tries=tries, not_ended=len(late), late=late[:10], exits=exits,
               died_by_term=killed_by_term, cgroups_left=left_cgroups, parent_gone_first=ready)
    shown = ", ".join(f"{'TERM' if k == -15 else k}: {v}" for k, v in sorted(exits.items()))
    print(f"d. {tries} TERMs ({mode}): {len(late)} dmons still running {END_WITHIN:.0f} s after"
          f"{' ' + str([l['left'] for l in late[:5]]) if late else ''}; exit statuses {{{shown}}}; "
          f"{left_cgroups} cgroups left{f'; {ready} parents had exited first (TERM to the daemon)' if ready else ''}: "
          f"{'ok' if not late else 'FAILED'}", flush=True)
    return fig, not late


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dmon", default=os.path.join(ROOT, "target/release/dmon"))
    ap.add_argument("--quick", action="store_true", help="small counts, about 30 s")
    ap.add_argument("--cases", default="a,b,c,d", help="which cases, of a,b,c,d")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--tree", default="auto", choices=("auto", "cgroup2", "freezer"),
                    help="dmon's --tree in cases a and b (auto: cgroup2 where it can be had)")
    a = ap.parse_args()
    global TREE_BACKEND
    TREE_BACKEND = a.tree
    cases = a.cases.split(",")
    if not set(cases) <= {"a", "b", "c", "d"}:
        ap.error(f"--cases: not among a,b,c,d: {a.cases}")
    if os.geteuid() != 0:
        raise SystemExit("soak: needs root (dmon makes cgroups)")
    dmon = os.path.abspath(a.dmon)
    if not os.path.exists(dmon):
        subprocess.run(["cargo", "build", "-q", "--release", "--bin", "dmon", "--bin", "dlog"], cwd=ROOT, check=True)
    q = a.quick
    figures, failed = {}, []
    with tempfile.TemporaryDirectory(prefix="soak.") as work:
        os.chmod(work, 0o755)
        runs = {
            "a": lambda: [("a", restarts(work, dmon, 1000 if q else 10000))],
            "b": lambda: [("b", pauses(work, dmon, 20 if q else 1000))],
            "c": lambda: [(f"c.{s.name}", logs(work, dmon, 2 if q else 60, s)) for s in (signal.SIGTERM, signal.SIGKILL)],
            "d": lambda: [(f"d.{m}", terms(work, dmon, n, m))
                          for m, n in (("foreground", 20 if q else 300), ("ignored", 10 if q else 200),
                                       ("daemon", 10 if q else 200), ("parent", 10 if q else 200))],
        }
        for case in cases:
            for name, (fig, ok) in runs[case]():
                figures[name] = fig
                if not ok:
                    failed.append(name)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    print(f"soak: {'every case held' if not failed else 'FAILED: ' + ', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
