#!/usr/bin/env python3
"""The benchmark suite's measuring and reporting part (run it through
integration/bench.sh, which installs the peers and builds dmon first).

Every case runs dmon and its peers in the same run, alternating tool by tool
within each round, several rounds; the report gives medians and ratios. Times
are wall-clock on a shared machine: read the figures as ratios between tools
measured side by side, not as absolutes.

Every process a case starts carries a tag unique to this run in its command
line (or is a supervisor started here); all of them are ended, and every cgroup
a dmon started here left behind is removed, when the suite ends or fails.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HZ = os.sysconf("SC_CLK_TCK")
RUN_TAG = f"dmonbench{os.getpid()}"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CGROUP_ROOTS = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup", "/sys/fs/cgroup/freezer"]

started = []  # (Popen, is_dmon)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def census(tag, tree_only=True):
    """Live (non-zombie) processes whose command line carries tag:
    {pid: (state, cpu ticks)}. With tree_only, only the shells of a tree, not
    the supervisor whose arguments carry the tag too."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if tag.encode() not in f.read():
                    continue
            if tree_only:
                with open(f"/proc/{name}/comm") as f:
                    if f.read().strip() != "sh":
                        continue
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        out[int(name)] = (fields[0], int(fields[11]) + int(fields[12]))
    return out


def ticks(tag):
    return sum(t for _, t in census(tag).values())


def kill_tag(tag):
    """SIGKILL every process of this run carrying tag (CONT first for stopped ones)."""
    for _ in range(50):
        pids = census(tag, tree_only=False)
        if not pids:
            return
        for pid in pids:
            for sig in (signal.SIGKILL, signal.SIGCONT):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        time.sleep(0.1)


def start(argv, out, env=None, dmon=False):
    extra = dict(os.environ)
    extra.update(env or {})
    p = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=open(out, "ab"),
        stderr=subprocess.STDOUT,
        env=extra,
        start_new_session=True,
    )
    started.append((p, dmon))
    return p


def stop(p, timeout=15):
    """TERM to the process (a dmon ends its own tree), then KILL its group."""
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        pass


def remove_cgroups(pid):
    """Remove what a dmon with this pid left (only when it could not: killed)."""
    for root in CGROUP_ROOTS:
        top = f"{root}/dmon.{pid}"
        if not os.path.isdir(top):
            continue
        for leaf in ("cmd", "log", "supervisor", ""):
            d = os.path.join(top, leaf) if leaf else top
            if not os.path.isdir(d):
                continue
            for name, value in (("cgroup.kill", "1"), ("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                try:
                    with open(os.path.join(d, name), "w") as f:
                        f.write(value)
                except OSError:
                    pass
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    for line in f:
                        try:
                            os.kill(int(line), signal.SIGKILL)
                        except (OSError, ValueError):
                            pass
            except OSError:
                pass
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def cleanup():
    for p, _ in started:
        stop(p, timeout=5)
    kill_tag(RUN_TAG)
    for p, dmon in started:
        if dmon:
            remove_cgroups(p.pid)


def wait_for(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def status_has(path, word, count=1):
    try:
        with open(path) as f:
            return sum(1 for line in f if line.startswith(word)) >= count
    except OSError:
        return False


def tree_script(work, size, tag):
    """A tree of size busy shells tagged tag: the leader, size-3 background
    subshells and two double-forked, setsid'd members."""
    path = os.path.join(work, f"tree-{tag}.sh")
    with open(path, "w") as f:
        f.write(
            f"i=3; while [ $i -lt {size} ]; do ( while :; do :; done ) & i=$((i+1)); done\n"
            f"( setsid sh -c 'while :; do :; done' {tag} & ); ( setsid sh -c 'while :; do :; done' {tag} & )\n"
            "while :; do :; done\n"
        )
    return path


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def percentile(xs, q):
    """The nearest-rank percentile `q` (0 to 100) of `xs`."""
    xs = sorted(xs)
    return xs[max(0, -(-len(xs) * q // 100) - 1)] if xs else None


def fmt(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


# ---------------------------------------------------------------- the cases


class Suite:
    def __init__(self, args):
        self.a = args
        self.quick = args.quick
        self.rounds = 1 if self.quick else args.rounds
        self.tail_runs = args.tail_runs
        self.work = tempfile.mkdtemp(prefix="dmon-bench.", dir="/var/tmp")
        self.dmon = os.path.join(args.bin, "dmon")
        self.n = 0
        self.results = {}
        self.timeout = 1 if self.quick else 3
        # The timeline: load high from hi[0] to hi[1] seconds, end at `end`.
        self.hi, self.end = ((1, 4), 7) if self.quick else ((2, 7), 12)

    def tag(self, what):
        self.n += 1
        return f"{RUN_TAG}-{what}-{self.n}"

    def path(self, name):
        return os.path.join(self.work, name)

    # -- (1) pause

    def pause_tools(self):
        tools = [f"dmon --tree {b}" for b in ("cgroup2", "freezer", "signals")]
        tools += ["loadwatch", "cpulimit", "one pid (DMon 0.6)"]
        return tools

    def pause_once(self, tool, seconds):
        tag = self.tag("pause")
        script = tree_script(self.work, 6, tag)
        load = self.path(f"load-{tag}")
        status = self.path(f"status-{tag}")
        with open(load, "w") as f:
            f.write("0.10 0.10 0.10 1/1 1\n")
        unpaused = None
        if tool.startswith("dmon"):
            backend = tool.split()[-1]
            p = start(
                [self.dmon, "-n", "--tree", backend, "--grace", "1", "-I", status, "-L", "5", "-l", "1", "sh", script, tag],
                self.path("dmon.log"),
                env={"DMON_LOADAVG_FILE": load},
                dmon=True,
            )
        elif tool == "loadwatch":
            # The real load average here is far above 0.01: loadwatch stops
            # the command's process group at its first sample.
            p = start(["loadwatch", "-d", "1", "-h", "0.01", "-l", "0.001", "--", "sh", script, tag], self.path("loadwatch.log"))
        elif tool == "cpulimit":
            # cpulimit throttles rather than pauses: 1 % is as close as it gets.
            p = start(["cpulimit", "-l", "1", "-m", "-f", "-q", "--", "sh", script, tag], self.path("cpulimit.log"))
        else:
            p = start(["sh", script, tag], self.path("baseline.log"))
        ok = wait_for(lambda: len(census(tag)) >= 6, 30)
        if not ok:
            log(f"pause: {tool}: the tree did not grow")
        if tool.startswith("dmon"):
            t0 = ticks(tag)
            time.sleep(1)
            unpaused = (ticks(tag) - t0) / HZ
            with open(load, "w") as f:
                f.write("9.00 9.00 9.00 1/1 1\n")
            if not wait_for(lambda: status_has(status, "cmd pause"), 10):
                log(f"pause: {tool}: no pause in the status file")
        elif tool in ("loadwatch", "cpulimit"):
            time.sleep(2.5)
        else:
            t0 = ticks(tag)
            time.sleep(1)
            unpaused = (ticks(tag) - t0) / HZ
            os.kill(p.pid, signal.SIGSTOP)
        time.sleep(0.3)
        c0 = census(tag)
        t0 = sum(t for _, t in c0.values())
        time.sleep(seconds)
        c1 = census(tag)
        used = (sum(t for _, t in c1.values()) - t0) / HZ / seconds
        running = sum(1 for s, _ in c1.values() if s == "R")
        moved = sum(1 for pid, (_, t) in c1.items() if pid in c0 and t > c0[pid][1])
        if tool.startswith("one pid"):
            os.kill(p.pid, signal.SIGCONT)
        stop(p)
        kill_tag(tag)
        return {"cpu": used, "running": running, "moved": moved, "unpaused": unpaused}

    def case_pause(self):
        seconds = 1 if self.quick else 5
        tools = self.pause_tools()
        rows = {t: [] for t in tools}
        for r in range(self.rounds):
            for t in tools:
                log(f"pause: round {r + 1}: {t}")
                rows[t].append(self.pause_once(t, seconds))
        self.results["pause"] = {"seconds": seconds, "rows": rows}

    # -- (2) freeze and kill time against tree size

    def case_freeze(self):
        sizes = "10 100" if self.quick else "10 100 1000"
        rows = []
        for r in range(self.rounds):
            log(f"freeze/kill: round {r + 1}: sizes {sizes}")
            out = subprocess.run(
                [self.a.tree_exe, "--ignored", "--nocapture", "--exact", "bench_backends"],
                env=dict(os.environ, DMON_BENCH_SIZES=sizes),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=1800,
            ).stdout
            for line in out.splitlines():
                m = re.match(r"^(cgroup2|freezer|signals)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)", line)
                if m:
                    rows.append((m[1], int(m[2]), float(m[3]), float(m[4]), int(m[5])))
        self.results["freeze"] = {"sizes": [int(s) for s in sizes.split()], "rows": rows}

    # -- (7) stop and kill by the dmon binary, beside the kernel floor

    def case_control(self):
        sizes = "10" if self.quick else "10,100,1000"
        kinds = "busy" if self.quick else "sleep,busy"
        rows = []
        for r in range(self.rounds):
            log(f"control: round {r + 1}: sizes {sizes}, {kinds}")
            out = self.path(f"control-{r}.json")
            subprocess.run(
                [sys.executable, os.path.join(REPO, "integration/bench-control.py"), "--sizes", sizes, "--kinds", kinds,
                 "--dmon", self.dmon, "--json", out],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True, timeout=3600,
            )
            with open(out) as f:
                rows += json.load(f)
        self.results["control"] = {"rows": rows}

    # -- (9) the tails of stop and kill: many runs of the largest busy tree

    def case_tails(self):
        runs = 2 if self.quick else self.tail_runs
        size = "10" if self.quick else "1000"
        log(f"tails: {runs} runs per backend of {size} busy")
        out = self.path("tails.json")
        subprocess.run(
            [sys.executable, os.path.join(REPO, "integration/bench-control.py"), "--sizes", size, "--kinds", "busy",
             "--repeat", str(runs), "--dmon-only", "--dmon", self.dmon, "--json", out],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True, timeout=7200,
        )
        with open(out) as f:
            self.results["tails"] = {"rows": json.load(f), "runs": runs}

    # -- (3) timeout and shutdown survivors

    def survivors_once(self, tool, kind):
        tag = self.tag("surv")
        script = tree_script(self.work, 6, tag)
        status = self.path(f"status-{tag}")
        dmon = tool.startswith("dmon")
        if dmon:
            argv = [self.dmon, "-n", "--tree", tool.split()[-1], "--grace", "1", "-I", status]
            if kind == "timeout":
                argv += ["-t", str(self.timeout)]
            p = start(argv + ["sh", script, tag], self.path("dmon.log"), dmon=True)
        else:
            p = start(["sh", script, tag], self.path("baseline.log"))
        wait_for(lambda: len(census(tag)) >= 6, 30)
        before = set(census(tag))
        if kind == "timeout":
            if dmon:
                wait_for(lambda: status_has(status, "cmd timeout"), 15)
            else:
                # What DMon 0.6 does on a timeout: TERM to the command, then
                # KILL to it when the grace is over.
                time.sleep(self.timeout)
                os.kill(p.pid, signal.SIGTERM)
                time.sleep(1)
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(2.5 if not self.quick else 2)
        else:
            # Shutdown: TERM to dmon, or (the baseline) TERM to the command.
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                log(f"survivors: {tool}: did not exit")
            time.sleep(1)
        alive = set(census(tag)) & before
        stop(p)
        kill_tag(tag)
        return {"of": len(before), "alive": len(alive)}

    def case_survivors(self):
        tools = [f"dmon --tree {b}" for b in ("cgroup2", "freezer", "signals")] + ["one pid (DMon 0.6)"]
        rows = {(t, k): [] for t in tools for k in ("timeout", "shutdown")}
        for r in range(self.rounds):
            for t in tools:
                for k in ("timeout", "shutdown"):
                    log(f"survivors: round {r + 1}: {t}: {k}")
                    rows[(t, k)].append(self.survivors_once(t, k))
        self.results["survivors"] = {"tools": tools, "rows": rows}

    # -- supervisors of the other suites

    def service_dir(self, name, run):
        d = self.path(f"svc-{name}-{self.tag('svc')}")
        os.makedirs(d)
        with open(os.path.join(d, "run"), "w") as f:
            f.write("#!/bin/sh\n" + run + "\n")
        os.chmod(os.path.join(d, "run"), 0o755)
        return d

    def supervise(self, tool, run_line, extra=()):
        """Start tool supervising `sh -c run_line`; returns the supervisor."""
        if tool.startswith("dmon"):
            argv = [self.dmon, "-n", *extra, "sh", "-c", run_line]
            return start(argv, self.path("dmon.log"), dmon=True)
        d = self.service_dir(tool, "exec sh -c '" + run_line.replace("'", "'\\''") + "'")
        prog = {"s6-supervise": "s6-supervise", "runsv": "runsv", "supervise": "supervise"}[tool]
        return start([prog, d], self.path(f"{prog}.log"))

    # -- (4) idle cost

    def case_idle(self):
        seconds = 5 if self.quick else 30
        tools = {
            "dmon": [],
            "dmon -p F … -- cat": None,  # detached, with a log command
            "dmon -L 1000": ["-L", "1000"],
            # PSI is system-wide: other work can fire the trigger, and a
            # paused command is no longer idle (the report says so).
            "dmon --pressure 90": ["--pressure", "90"],
            "s6-supervise": [],
            "runsv": [],
            "supervise": [],
        }
        rows = {t: [] for t in tools}
        for r in range(self.rounds):
            log(f"idle: round {r + 1}: {len(tools)} supervisors side by side for {seconds} s")
            tag = self.tag("idle")
            # A link to sleep whose name carries the tag, so that the command
            # is plain sleep and yet found by the clean-up.
            sleep = self.path(f"sleep-{tag}")
            os.symlink(shutil.which("sleep"), sleep)
            procs, pids = {}, {}
            for t, extra in tools.items():
                if extra is None:
                    pid_file = self.path(f"idle-{tag}.pid")
                    argv = [self.dmon, "-p", pid_file, "sh", "-c", f"exec {sleep} 100000", "--", "cat"]
                    procs[t] = start(argv, self.path("dmon.log"), dmon=True)
                    wait_for(lambda: read_pid(pid_file), 10)
                    pids[t] = read_pid(pid_file)
                else:
                    procs[t] = self.supervise(t, f"exec {sleep} 100000", extra)
                    pids[t] = procs[t].pid
            # Past the start-up of each: a pressure trigger's settling look
            # (psi::SETTLE, 5 s) and the release of the pages it mapped 1 s later.
            time.sleep(8)
            before = {t: switches(pid) for t, pid in pids.items()}
            time.sleep(seconds)
            for t, pid in pids.items():
                row = {"per_min": (switches(pid) - before[t]) * 60 / seconds, "rss": rss_kib(pid)}
                row.update(memory(pid))
                rows[t].append(row)
            # Then once more after a restart of the command, which runs code
            # that the idle wait does not.
            old = {t: sleeper(pid, tag) for t, pid in pids.items()}
            for s in old.values():
                if s:
                    os.kill(s, signal.SIGKILL)
            for t, pid in pids.items():
                wait_for(lambda: sleeper(pid, tag) not in (None, old[t]), 10)
            time.sleep(2)
            for t, pid in pids.items():
                rows[t][-1]["rss_restart"] = rss_kib(pid)
            for t, p in procs.items():
                if pids[t] != p.pid:  # the detached dmon
                    os.kill(pids[t], signal.SIGTERM)
                    wait_for(lambda: not os.path.exists(f"/proc/{pids[t]}"), 15)
                    remove_cgroups(pids[t])
                stop(p)
            kill_tag(tag)
        self.results["idle"] = {"seconds": seconds, "rows": rows}

    # -- (5) restart latency and crash loop

    def case_restart(self):
        tools = ["dmon", "s6-supervise", "runsv", "supervise"]
        lat_s = 5 if self.quick else 20
        crash_s = 3 if self.quick else 10
        lat = {t: [] for t in tools}
        crash = {t: [] for t in tools}
        for r in range(self.rounds):
            log(f"restart: round {r + 1}: latency, {lat_s} s")
            tag = self.tag("restart")
            files = {t: self.path(f"stamps-{t}-{tag}") for t in tools}
            # Runs of 1.5 s, longer than the 1 s the peers wait after a short run.
            run = 'echo "s $(date +%s%N)" >>{f}; sleep 1.5; echo "e $(date +%s%N)" >>{f}; exit 0 # ' + tag
            procs = {t: self.supervise(t, run.format(f=files[t])) for t in tools}
            time.sleep(lat_s)
            for p in procs.values():
                stop(p)
            kill_tag(tag)
            for t in tools:
                lat[t] += gaps(files[t])
            log(f"restart: round {r + 1}: crash loop, {crash_s} s")
            tag = self.tag("crash")
            files = {t: self.path(f"crash-{t}-{tag}") for t in tools}
            run = 'echo "s $(date +%s%N)" >>{f}; exit 1 # ' + tag
            procs = {t: self.supervise(t, run.format(f=files[t])) for t in tools}
            t0 = time.time_ns()
            time.sleep(crash_s)
            for p in procs.values():
                stop(p)
            kill_tag(tag)
            for t in tools:
                starts = [s for s in stamps(files[t]) if s[0] == "s" and s[1] <= t0 + crash_s * 10**9]
                crash[t].append(len(starts) / crash_s)
        self.results["restart"] = {"lat_s": lat_s, "crash_s": crash_s, "lat": lat, "crash": crash}

    # -- (8) what the usage record costs

    def record_once(self, backend, usage, runs):
        """A crash loop of `true` without back-off, RUNS runs with -I in JSON; the
        wall time per run, and dmon's own CPU time per run, read from its zombie
        (/proc/PID/stat's utime and stime, without its children's)."""
        status = self.path(f"record-{backend}-{usage}")
        env = dict(os.environ, DMON_USAGE="1" if usage else "0")
        argv = [self.dmon, "-n", "--tree", backend, "-m", str(runs), "--backoff-max", "0",
                "-I", status, "--status-format", "json", "true"]
        t0 = time.monotonic()
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
        wall = time.monotonic() - t0
        with open(f"/proc/{p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / HZ
        p.wait()
        with open(status) as f:
            recorded = sum(1 for line in f if '"usage"' in line)
        os.unlink(status)
        return {"wall_us": wall / (runs + 1) * 1e6, "cpu_us": cpu / (runs + 1) * 1e6, "records": recorded}

    def case_record(self):
        runs = 300 if self.quick else 3000
        rows = []
        for r in range(self.rounds):
            log(f"record: round {r + 1}: {runs} runs of true per backend, with and without the usage record")
            for backend in ("cgroup2", "freezer", "signals"):
                for usage in (True, False):
                    rows.append(dict(self.record_once(backend, usage, runs), backend=backend, usage=usage))
        self.results["record"] = {"runs": runs, "rows": rows}

    # -- (6) log throughput

    def case_logs(self):
        lines = 20000 if self.quick else 1000000
        runs = 1 if self.quick else self.rounds
        log(f"logs: {lines} lines, {runs} runs")
        out = self.path("logs.txt")
        env = dict(os.environ, BENCH_BIN=self.a.bin, BENCH_LOGS_RESULTS=out, BENCH_DIR=self.path("logs"))
        subprocess.run(["sh", os.path.join(REPO, "integration/bench-logs.sh"), str(lines), str(runs)], env=env, check=True, stdout=sys.stderr)
        rows = []
        with open(out) as f:
            for line in f:
                name, rate = line.rstrip("\n").rsplit(" ", 1)
                rows.append((name, float(rate)))
        self.results["logs"] = {"lines": lines, "runs": runs, "rows": rows}

    # -- the timeline of one pause cycle

    def case_timeline(self):
        """Load 0.1, then 9 from 2 s to 7 s, then 0.1 until 12 s, through
        DMON_LOADAVG_FILE; dmon (-L 5 -l 1) and the one-pid baseline
        (polling the same file every 100 ms) each drive a 6-process tree."""
        series = {}
        for who in ("dmon", "baseline"):
            log(f"timeline: {who}")
            tag = self.tag("timeline")
            script = tree_script(self.work, 6, tag)
            load = self.path(f"load-{tag}")
            status = self.path(f"status-{tag}")
            with open(load, "w") as f:
                f.write("0.10 0.10 0.10 1/1 1\n")
            if who == "dmon":
                p = start(
                    [self.dmon, "-n", "--tree", "cgroup2", "-I", status, "-L", "5", "-l", "1", "sh", script, tag],
                    self.path("dmon.log"),
                    env={"DMON_LOADAVG_FILE": load},
                    dmon=True,
                )
            else:
                p = start(["sh", script, tag], self.path("baseline.log"))
            wait_for(lambda: len(census(tag)) >= 6, 30)
            rows, marks = [], []
            paused = False
            seen = 0
            t_start = time.monotonic()
            last = ticks(tag)
            value = 0.1
            while True:
                time.sleep(0.1)
                t = time.monotonic() - t_start
                if t >= self.end:
                    break
                want = 9.0 if self.hi[0] <= t < self.hi[1] else 0.1
                if want != value:
                    value = want
                    with open(load, "w") as f:
                        f.write(f"{value:.2f} {value:.2f} {value:.2f} 1/1 1\n")
                if who == "dmon":
                    try:
                        with open(status) as f:
                            lines = f.read().splitlines()
                    except OSError:
                        lines = []
                    for line in lines[seen:]:
                        if line.startswith("cmd pause") or line.startswith("cmd resume"):
                            marks.append((t, line.split()[1]))
                    seen = len(lines)
                else:
                    if not paused and value > 5:
                        os.kill(p.pid, signal.SIGSTOP)
                        paused = True
                        marks.append((t, "pause"))
                    elif paused and value < 1:
                        os.kill(p.pid, signal.SIGCONT)
                        paused = False
                        marks.append((t, "resume"))
                now = ticks(tag)
                rows.append((t, value, max(0, now - last) / HZ / 0.1))
                last = now
            stop(p)
            kill_tag(tag)
            series[who] = {"rows": rows, "marks": marks}
        self.results["timeline"] = series


def switches(pid):
    n = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if "ctxt_switches" in line:
                n += int(line.split()[1])
    return n


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def memory(pid):
    """smaps_rollup's Pss and Private_Dirty (KiB), and "alone": the Pss with the
    pages of the process's own executable counted whole, as when it is the
    only process running that binary (dmon's rows share theirs here)."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Pss", "Private_Dirty"):
                out[key.lower()] = int(rest.split()[0])
    exe = os.path.realpath(f"/proc/{pid}/exe")
    shared, mine = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            words = line.split()
            if "-" in words[0] and not words[0].endswith(":"):
                mine = len(words) > 5 and words[5] == exe
            elif mine and words[0] == "Rss:":
                shared += int(words[1])
            elif mine and words[0] == "Pss:":
                shared -= int(words[1])
    out["pss_alone"] = out.get("pss", 0) + shared
    return out


def sleeper(pid, tag):
    """The pid of the tagged command under the supervisor pid, if any."""
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            continue
        for k in kids:
            try:
                with open(f"/proc/{k}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                if argv[0].endswith(tag.encode()):
                    return k
            except OSError:
                pass
        todo += kids
    return None


def stamps(path):
    try:
        with open(path) as f:
            return [(w, int(n)) for w, n in (line.split() for line in f if len(line.split()) == 2)]
    except OSError:
        return []


def gaps(path):
    """Seconds from each run's end stamp to the next run's start stamp."""
    out, end = [], None
    for word, t in stamps(path):
        if word == "e":
            end = t
        elif word == "s" and end is not None:
            out.append((t - end) / 1e9)
            end = None
    return out


# ---------------------------------------------------------------- machine


def machine():
    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""

    mem = re.search(r"MemTotal:\s+(\d+)", read("/proc/meminfo"))
    model = re.search(r"model name\s*:\s*(.*)", read("/proc/cpuinfo"))
    mounts = [line.split() for line in read("/proc/self/mounts").splitlines()]
    types = {m[1]: m[2] for m in mounts}
    if types.get("/sys/fs/cgroup") == "cgroup2":
        layout = "pure cgroup v2 at /sys/fs/cgroup"
    elif any(m[2] == "cgroup2" for m in mounts):
        v2 = [m[1] for m in mounts if m[2] == "cgroup2"][0]
        layout = f"hybrid: cgroup v1 hierarchies and cgroup2 at {v2}"
    elif any(m[2] == "cgroup" and "freezer" in m[3] for m in mounts):
        layout = "cgroup v1 only (freezer mounted)"
    else:
        layout = "no cgroups"
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    systemd = "yes" if os.path.isdir("/run/systemd/system") else "no"
    return {
        "cpus": os.cpu_count(),
        "model": model[1].strip() if model else "?",
        "mem_gib": int(mem[1]) / 1024 / 1024 if mem else 0,
        "kernel": os.uname().release,
        "layout": layout,
        "systemd": systemd,
        "load": read("/proc/loadavg").split()[:3],
        "commit": commit or "?",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


# ---------------------------------------------------------------- report


def plots(suite, img):
    os.makedirs(img, exist_ok=True)
    out = {}
    w = suite.work
    tl = suite.results.get("timeline")
    if tl:
        script = [
            "set terminal pngcairo size 900,700 font ',10'",
            f"set output '{img}/pause-timeline.png'",
            "set multiplot layout 2,1",
            "set xlabel 'seconds'",
            "set ylabel 'CPUs used by the tree'",
            "set y2label 'load average (from DMON_LOADAVG_FILE)'",
            "set yrange [0:2.4]",
            "set y2range [0:10]",
            "set ytics nomirror",
            "set y2tics",
            "set key below horizontal",
            "set termoption noenhanced",
            "set grid",
        ]
        for who, title in (("dmon", "dmon -L 5 -l 1 (cgroup2): the whole tree stops"), ("baseline", "one pid (DMon 0.6): SIGSTOP to the leader only")):
            data = os.path.join(w, f"timeline-{who}.dat")
            with open(data, "w") as f:
                for t, load, cpu in tl[who]["rows"]:
                    f.write(f"{t:.2f} {load:.2f} {cpu:.3f}\n")
            script.append("unset arrow")
            for i, (t, what) in enumerate(tl[who]["marks"]):
                color = "#c00000" if what == "pause" else "#008000"
                script.append(f"set arrow {i + 1} from {t:.2f}, graph 0 to {t:.2f}, graph 1 nohead lw 2 dt 2 lc rgb '{color}'")
            script.append(f"set title '{title}'")
            script.append(
                f"plot '{data}' using 1:3 with steps lw 2 lc rgb '#1f4e9c' title 'tree CPU', "
                f"'' using 1:2 axes x1y2 with steps lw 1 lc rgb '#888888' title 'load', "
                "NaN with lines dt 2 lw 2 lc rgb '#c00000' title 'pause', NaN with lines dt 2 lw 2 lc rgb '#008000' title 'resume'"
            )
        script.append("unset multiplot")
        gnuplot(script, w)
        out["timeline"] = "img/pause-timeline.png"
    fr = suite.results.get("freeze")
    if fr and fr["rows"]:
        script = [
            "set terminal pngcairo size 900,420 font ',10'",
            f"set output '{img}/freeze-time.png'",
            "set multiplot layout 1,2",
            "set logscale xy",
            "set xlabel 'processes in the tree'",
            "set grid",
            "set key top left",
            f"set xrange [{min(fr['sizes']) * 0.7}:{max(fr['sizes']) * 1.4}]",
        ]
        for col, label in ((2, "stop"), (3, "kill")):
            plots_ = []
            for b in ("cgroup2", "freezer", "signals"):
                data = os.path.join(w, f"freeze-{b}.dat")
                with open(data, "w") as f:
                    for size in fr["sizes"]:
                        rs = [r for r in fr["rows"] if r[0] == b and r[1] == size]
                        if rs:
                            f.write(f"{size} {median([r[2] for r in rs]):.3f} {median([r[3] for r in rs]):.3f}\n")
                plots_.append(f"'{data}' using 1:{col} with linespoints lw 2 pt 7 title '{b}'")
            script.append(f"set ylabel 'ms to a fully {'stopped' if label == 'stop' else 'killed'} tree (median)'")
            script.append(f"set title '{'freeze (pause)' if label == 'stop' else 'kill'} time against tree size'")
            script.append("plot " + ", ".join(plots_))
        script.append("unset multiplot")
        gnuplot(script, w)
        out["freeze"] = "img/freeze-time.png"
    return out


def gnuplot(lines, work):
    path = os.path.join(work, "plot.gp")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run(["gnuplot", path], check=True)


def report(suite, m, figures, command):
    r = suite.results
    L = []
    add = L.append
    add("# Benchmarks")
    add("")
    add("dmon next to the tools it is compared with, measured in one run of the suite on one")
    add("machine. Every case runs the tools side by side, alternating tool by tool in each")
    add(f"round, {suite.rounds} round{'s' if suite.rounds > 1 else ''}; figures are medians. Reproduce with (as root):")
    add("")
    add(f"    {command}")
    add("")
    add("The suite installs the peers from Debian's packages when they are missing")
    add("(daemontools, runit, s6, loadwatch, cpulimit, and gnuplot-nox for the plots), builds")
    add("dmon in release mode and rewrites this page and `docs/img/`. `--quick` runs every")
    add("case briefly, to check that it runs (no figure is judged).")
    add("")
    add("## Machine")
    add("")
    add("| | |")
    add("|---|---|")
    add(f"| CPUs | {m['cpus']} × {m['model']} |")
    add(f"| memory | {m['mem_gib']:.1f} GiB |")
    add(f"| kernel | Linux {m['kernel']} |")
    add(f"| cgroups | {m['layout']}; systemd as init: {m['systemd']} |")
    add(f"| load average at the start | {' '.join(m['load'])} |")
    add(f"| dmon | commit {m['commit']}, release build |")
    add(f"| date | {m['date']} |")
    add("")
    if float(m["load"][0]) > 0.5 * m["cpus"]:
        add(f"The load average was {m['load'][0]} on {m['cpus']} CPUs when the run started: other work")
        add("shared the machine, so the times below carry that noise. The comparisons hold within")
        add("each round, as every tool met the same conditions.")
        add("")

    if "pause" in r:
        p = r["pause"]
        add("## 1. Pause: CPU used by a paused tree")
        add("")
        add("A tree of 6 busy shells (the leader, 3 background subshells and 2 double-forked,")
        add("`setsid`'d members). Each tool pauses it; the figure is the CPU time the tree's")
        add(f"processes used per second over {p['seconds']} s once the pause is in place (2.00 = both CPUs).")
        add("dmon's load comes from `DMON_LOADAVG_FILE` (above `-L 5`); loadwatch is given marks")
        add("below the real load (`-h 0.01`), so it stops the command at its first sample; cpulimit")
        add("(`-l 1 -m`) throttles rather than pauses; \"one pid\" sends SIGSTOP to the leader only,")
        add("which is what DMon 0.6 does.")
        add("")
        base = median([x["cpu"] for x in p["rows"]["one pid (DMon 0.6)"]])
        unp = median([x["unpaused"] for t in p["rows"] for x in p["rows"][t] if x["unpaused"] is not None])
        add("| tool | CPU-s/s while paused | processes still running | of the unpaused tree | ratio to one pid |")
        add("|---|---:|---:|---:|---:|")
        for t, xs in p["rows"].items():
            cpu = median([x["cpu"] for x in xs])
            run = median([x["moved"] for x in xs])
            share = f"{100 * cpu / unp:.1f} %" if unp else "—"
            add(f"| {t} | {fmt(cpu, 3)} | {fmt(run, 0)} of 6 | {share} | {ratio(cpu, base)} |")
        add("")
        add(f"Unpaused, the tree used {fmt(unp)} CPU-s/s. \"Processes still running\" counts those")
        add("whose CPU time grew during the measurement.")
        add("")
        if "timeline" in figures:
            add(f"One pause cycle (load 9 from {suite.hi[0]} s to {suite.hi[1]} s, else 0.1; `-L 5 -l 1`; sampled every 100 ms):")
            add("")
            add(f"![pause timeline]({figures['timeline']})")
            add("")
        tl = r.get("timeline")
        if tl:
            for who, name in (("dmon", "dmon"), ("baseline", "one pid")):
                rows = tl[who]["rows"]
                marks = tl[who]["marks"]
                pz = [t for t, w in marks if w == "pause"]
                rs = [t for t, w in marks if w == "resume"]
                if pz and rs:
                    inside = [c for t, _, c in rows if pz[0] + 0.3 < t < rs[0]]
                    add(f"- {name}: paused {pz[0] - suite.hi[0]:.1f} s after the load rose, resumed {rs[0] - suite.hi[1]:.1f} s after it fell; "
                        f"mean tree CPU while paused {statistics.mean(inside) if inside else 0:.2f} CPUs.")
            add("")

    if "freeze" in r:
        fr = r["freeze"]
        add("## 2. Freeze and kill time against tree size")
        add("")
        add("dmon's tree code (`tests/tree/bench.rs`) on a tree of N busy shells, two of them")
        add("`setsid`'d: the time from the decision to a fully stopped tree (`frozen 1`, FROZEN, or")
        add("every process in state T) and to an empty tree after the kill, in ms.")
        add("")
        add("| processes | " + " | ".join(f"{b} stop | {b} kill" for b in ("cgroup2", "freezer", "signals")) + " | signals ÷ cgroup2 (stop) |")
        add("|---:|" + "---:|" * 7)
        for size in fr["sizes"]:
            cells, stopm = [], {}
            for b in ("cgroup2", "freezer", "signals"):
                rs = [x for x in fr["rows"] if x[0] == b and x[1] == size]
                s, k = median([x[2] for x in rs]), median([x[3] for x in rs])
                stopm[b] = s
                cells += [fmt(s), fmt(k)]
            add(f"| {size} | " + " | ".join(cells) + f" | {ratio(stopm['signals'], stopm['cgroup2'])} |")
        add("")
        if "freeze" in figures:
            add(f"![freeze and kill time]({figures['freeze']})")
            add("")

    if "survivors" in r:
        s = r["survivors"]
        add("## 3. Survivors of a timeout and of shutdown")
        add("")
        t = suite.timeout
        add(f"The same 6-process tree. Timeout: dmon `-t {t} --grace 1`, counted {2.5 if t > 1 else 2} s after the")
        add(f"`cmd timeout` status line; the baseline sends TERM to the leader at {t} s and KILL a")
        add("second later. Shutdown: TERM to dmon (or, for the baseline, to the leader), counted")
        add("1 s after it exited. Processes of the tree still alive (median):")
        add("")
        add("| tool | after a timeout | after shutdown |")
        add("|---|---:|---:|")
        for t in s["tools"]:
            cells = []
            for k in ("timeout", "shutdown"):
                xs = s["rows"][(t, k)]
                cells.append(f"{fmt(median([x['alive'] for x in xs]), 0)} of {fmt(median([x['of'] for x in xs]), 0)}")
            add(f"| {t} | {cells[0]} | {cells[1]} |")
        add("")

    if "idle" in r:
        i = r["idle"]
        add("## 4. Supervisor cost while idle")
        add("")
        add(f"Measured at commit {m['commit']} on {m['date']} (`{command}`).")
        add(f"Each supervisor runs `sleep`, all side by side; wake-ups are the supervisor's context")
        add(f"switches (`voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` in /proc/PID/status)")
        add(f"over {i['seconds']} s from 8 s after the start, per minute. Memory, in KiB, from /proc/PID/status and smaps: RSS is")
        add("VmRSS at the end of the idle time, and again 2 s after the command was killed and")
        add("restarted (code the idle wait does not run); Pss alone is the proportional set size with")
        add("the supervisor's own executable counted whole, as for the only process running that")
        add("binary (the dmon rows share dmon's here; shared libraries such as libc stay divided among")
        add("all their users); Private_Dirty is what nothing else holds (heap, stack, written data).")
        add("`dmon` runs in the foreground (`-n`); `dmon -p F … -- cat` detaches and has a log command.")
        add("")
        rows = i["rows"]
        med = {t: {k: median([x[k] for x in xs if k in x]) for k in ("per_min", "rss", "rss_restart", "pss_alone", "private_dirty")}
               for t, xs in rows.items()}
        d = med["dmon"]
        add("| supervisor | wake-ups per minute | RSS | RSS after a restart | Pss alone | Private_Dirty | RSS ÷ dmon's | Pss alone ÷ dmon's |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|")
        for t, x in med.items():
            add(f"| {t} | {fmt(x['per_min'], 1)} | {fmt(x['rss'], 0)} | {fmt(x['rss_restart'], 0)} | {fmt(x['pss_alone'], 0)} | "
                f"{fmt(x['private_dirty'], 0)} | {ratio(x['rss'], d['rss'])} | {ratio(x['pss_alone'], d['pss_alone'])} |")
        add("")
        add("`-L` reads the load average when the kernel updates it (every 5 s); `--pressure`")
        add("waits on a PSI trigger (cpu). PSI is system-wide: other work on a shared machine can")
        add("stall long enough to fire the trigger, and dmon then pauses and resumes its command, which")
        add("is no longer idle; wake-ups in that row mean it did, and its RSS then holds the code of a")
        add("pause too (one run, at a load average of 32 on 2 CPUs, had 14 wake-ups a minute and 2348")
        add("KiB of RSS in that row).")
        add("`integration/idle-memory.py` gives the same figures per mapping and after a minute of")
        add("idling and a signal too.")
        add("")
        add("Most of a supervisor's RSS is clean file pages: its binary's text and libc's, faulted in")
        add("as it runs (the kernel maps up to 64 KiB around each fault) and shared with every other")
        add("process that maps them. dmon's start-up (option parsing, user look-ups, the first starts)")
        add("touches most of its 1 MB binary and much of libc, and little of that runs again. So,")
        add("before the idle wait, dmon unmaps (`MADV_DONTNEED`) every private, read-only file mapping")
        add("that holds no copied page: the pages stay in the page cache, exactly as if the kernel had")
        add("reclaimed them, and are mapped back by the code that runs next; data, RELRO, heap and")
        add("stack are not touched. The RSS after a restart is that: what the restart path maps back,")
        add("which stays (`integration/idle-memory.py`: unchanged after 60 s of idling and after a")
        add("signal). A detached dmon had most of this already, as its forked child maps again only")
        add("what it touches. A pause and resume maps more again, as the thaw runs in a helper thread")
        add("(ld.so's and libc's thread code), so dmon unmaps the same pages again a second after a")
        add("pause or resume, once no freezer write is running. `integration/idle-memory.py`, with")
        add("`dmon -n -L 5 -l 1` paused and resumed once by a faked load (`DMON_LOADAVG_FILE`), both")
        add("builds side by side on 2026-12-01: 1716 KiB of RSS before the cycle and 2596 after it")
        add("without that release, 1592 and 1576 with it.")
        add("")
        add("Evaluated on 2026-12-01 with `integration/idle-memory.py`, `dmon -n` built from the source")
        add("of commit f6d353f (the last row: ec89bf9), in KiB; two dmons of each build ran, so their")
        add("Pss divides their binary's text by two:")
        add("")
        add("| build | RSS | Pss | Private_Dirty | kept |")
        add("|---|---:|---:|---:|---|")
        add("| as before (opt-level \"s\", fat LTO, strip, panic abort) | 2840 | 884 | 240 | |")
        add("| opt-level \"z\" | 2660 | 820 | 260 | no: 3% less text, as much touched |")
        add("| clap without `suggestions` and `wrap_help` | — | — | — | no: 13 KB less text, for worse errors and help |")
        add("| static-pie glibc (`+crt-static`) | 1940 | 1346 | 204 | no: more Pss, and NSS look-ups crash (README, build) |")
        add("| start-up pages unmapped before the idle wait | 1140 | 519 | 240 | yes; 1424 RSS after a restart |")
        add("")
        add("dmon's messages go through its own small tracing subscriber (src/logging.rs): tracing-subscriber's")
        add("span registry held 32 KiB of heap in every idle dmon. clap has its defaults off already.")
        add("The restart latency (section 5's case, 3 rounds) measured 2.83 ms before and 2.53 ms after,")
        add("each run starting at a load average under 0.5: the first restart faults back its code")
        add("(6 minor faults more), later ones take as many as before.")
        add("")

    if "restart" in r:
        rs = r["restart"]
        add("## 5. Restart latency and crash loop")
        add("")
        add(f"Latency: a command that stamps the time (`date +%s%N`), sleeps 1.5 s, stamps again")
        add(f"and exits 0; the figure is the time from the second stamp to the next run's first,")
        add(f"in ms (so it includes one `date` start), over {rs['lat_s']} s per round. Runs last longer")
        add("than 1 s so that no tool's throttle of short runs applies.")
        add("")
        add(f"Crash loop: a command that stamps and exits 1 at once; starts per second over {rs['crash_s']} s.")
        add("dmon backs off on purpose (doubling waits up to `--backoff-max`, 60 s by default);")
        add("the others restart about once a second.")
        add("")
        d = median(rs["lat"]["dmon"])
        add("| supervisor | restart latency ms | ÷ dmon's | crash loop starts/s | restarts measured |")
        add("|---|---:|---:|---:|---:|")
        for t in rs["lat"]:
            lt = median(rs["lat"][t])
            add(f"| {t} | {fmt(lt * 1e3 if lt is not None else None)} | {ratio(lt, d)} | {fmt(median(rs['crash'][t]))} | {len(rs['lat'][t])} |")
        add("")

    if "logs" in r:
        lg = r["logs"]
        add("## 6. Log throughput")
        add("")
        add(f"`integration/bench-logs.sh`: {lg['lines']} lines of 100 bytes piped into each tool, which")
        add(f"writes them to files on the same disk; the time runs until the tool has exited (its last")
        add(f"sync included); median of {lg['runs']} run{'s' if lg['runs'] > 1 else ''}, tools alternating. `dlog` syncs every write")
        add("(durable); `-b` buffers.")
        add("")
        rows = dict(lg["rows"])
        peers = [n for n in rows if not n.startswith(("dlog", "drlog"))]
        add("| tool | lines/s | " + " | ".join(f"÷ {p.split()[0]}" for p in peers) + " |")
        add("|---|---:|" + "---:|" * len(peers))
        for n, v in lg["rows"]:
            add(f"| {n} | {v:,.0f} | " + " | ".join(ratio(v, rows[p]) for p in peers) + " |")
        add("")

    if "control" in r:
        rows = r["control"]["rows"]
        add("## 7. Stop and kill by the dmon binary under saturation")
        add("")
        add(f"Measured at commit {m['commit']} on {m['date']} (`{command}`).")
        add("`integration/bench-control.py`: the built dmon, at normal priority, on a tree of N shells")
        add("(two of them `setsid`'d) that sleep or spin, observed from a process at real-time priority")
        add("(SCHED_FIFO 10) that sleeps 0.5 ms between its looks. Stop: from dmon's `cmd pause` record")
        add("(written when it decides, before it freezes) to a fully stopped tree (`frozen 1`, FROZEN,")
        add("or every process in state T). Kill: from the `cmd timeout` record (`-t`) to the last process")
        add("gone; the shells do not trap TERM. Floor: the observer makes the same kernel operation")
        add("itself on the same tree (`cgroup.freeze`, `freezer.state`, STOP to the group and each")
        add("process; `cgroup.kill`, the v1 freeze-KILL-thaw cycle, KILL to the group and each). Peer:")
        add("coreutils `timeout`, which sends TERM to its process group, on the same tree. Times in ms")
        add("(medians); a stop under the observer's resolution shows as 0. A stop below its floor is")
        add("within what the observer can tell apart: the floor's clock starts before the observer's own")
        add("write, dmon's when its record appears. The time limit (`-t`, and `timeout`'s) is 5 s, 20 s")
        add("for 1000 processes; where it comes before the tree is whole (1000 busy shells can take")
        add("longer to start on a loaded machine) the measurement is made again with twice the limit, as")
        add("it would time the end of a part of the tree.")
        add("")
        add("| backend | tree | stop | floor | ratio | kill | floor | ratio | `timeout` kill | left by `timeout` |")
        add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        keys = sorted({(x["kind"], x["size"], x["backend"]) for x in rows},
                      key=lambda k: (k[0] != "sleep", k[1], ["cgroup2", "freezer", "signals"].index(k[2])))
        for kind, size, backend in keys:
            xs = [x for x in rows if (x["kind"], x["size"], x["backend"]) == (kind, size, backend)]
            m = {k: median([x[k] * 1000 for x in xs if x[k] is not None]) for k in ("stop", "stop_floor", "kill", "kill_floor", "peer_kill")}
            left = median([x["peer_left"] for x in xs if x["peer_left"] is not None])
            add(f"| {backend} | {size} {kind} | {fmt(m['stop'], 1)} | {fmt(m['stop_floor'], 1)} | {ratio(m['stop'], m['stop_floor'])} | "
                f"{fmt(m['kill'], 1)} | {fmt(m['kill_floor'], 1)} | {ratio(m['kill'], m['kill_floor'])} | {fmt(m['peer_kill'], 1)} | "
                f"{fmt(left, 0)} of {size} |")
        add("")
    if "record" in r:
        rc = r["record"]
        add("## 8. What the usage record costs")
        add("")
        add(f"A crash loop of `true` without back-off (`-m {rc['runs']} --backoff-max 0 -I FILE --status-format json`),")
        add("with the usage record (the default) and without it (`DMON_USAGE=0`), per backend, alternating in each")
        add("round. The run of `true` is the same in both, so the difference per run is the record's cost between the")
        add("empty tree and the next start: the leaf's counters read before the start and at the end, the peak files")
        add("opened, the longer line. Wall: the whole loop's time per run. dmon CPU: dmon's own time per run, read")
        add("from its zombie (`utime` + `stime` of /proc/PID/stat, its children's not included; 10 ms ticks over the")
        add("whole loop). Best of the rounds, µs per run.")
        add("")
        add("| backend | wall with | wall without | ratio | dmon CPU with | dmon CPU without | ratio |")
        add("|---|---:|---:|---:|---:|---:|---:|")
        for backend in ("cgroup2", "freezer", "signals"):
            best = {}
            for usage in (True, False):
                xs = [x for x in rc["rows"] if x["backend"] == backend and x["usage"] == usage]
                best[usage] = (min(x["wall_us"] for x in xs), min(x["cpu_us"] for x in xs))
            (w1, c1), (w0, c0) = best[True], best[False]
            add(f"| {backend} | {fmt(w1, 0)} | {fmt(w0, 0)} | {ratio(w1, w0)} | {fmt(c1, 0)} | {fmt(c0, 0)} | {ratio(c1, c0)} |")
        add("")
    if "tails" in r:
        rows, runs = r["tails"]["rows"], r["tails"]["runs"]
        add("## 9. Tails of stop and kill")
        add("")
        add(f"Measured at commit {m['commit']} on {m['date']} (`{command}`).")
        add(f"Section 7's dmon cases for the largest busy tree, {runs} runs per backend in a row, each on a fresh")
        add("tree (`integration/bench-control.py --repeat N --dmon-only`), with the observer at real-time priority.")
        add("A median hides the worst case; this shows it. Times in ms; the goal is a maximum of 300 ms for stop")
        add("and for kill in both cgroup backends. Each run waits until the trees before it are gone and at most")
        add("two tasks are runnable; the outliers of earlier series (a stop of 14 s, kills past their limits) were")
        add("the benchmark's own: a repeat read the records of the run before it from a status file of the same")
        add("name, and raced the dying tree of the run before it.")
        add("")
        add("| backend | tree | runs | stop median | stop p95 | stop max | kill median | kill p95 | kill max |")
        add("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for backend in ("cgroup2", "freezer", "signals"):
            xs = [x for x in rows if x["backend"] == backend]
            if not xs:
                continue
            cells = []
            for k in ("stop", "kill"):
                v = [x[k] * 1000 for x in xs if x[k] is not None]
                cells += [fmt(median(v), 1), fmt(percentile(v, 95), 1), fmt(max(v) if v else None, 1)]
            add(f"| {backend} | {xs[0]['size']} busy | {len(xs)} | " + " | ".join(cells) + " |")
        add("")
    return "\n".join(L)


def sections(text):
    """[(heading, lines)], the part before the first `## ` heading first."""
    out = [("", [])]
    for line in text.split("\n"):
        if line.startswith("## "):
            out.append((line, []))
        out[-1][1].append(line)
    return out


def merge(old, new):
    """old with each numbered section (`## 4. …`) that new has replaced by new's;
    a numbered section old lacks is added at the end."""
    number = lambda heading: heading.split()[1] if heading[3:4].isdigit() else None
    fresh = {number(h): lines for h, lines in sections(new) if h and number(h)}
    out, seen = [], set()
    for heading, lines in sections(old):
        seen.add(number(heading) if heading else None)
        out += fresh.get(number(heading), lines) if heading else lines
    for key, lines in fresh.items():
        if key not in seen:
            out += ([""] if out and out[-1] != "" else []) + lines
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", required=True, help="directory for benchmarks.md and img/")
    ap.add_argument("--bin", required=True, help="directory with dmon, dlog, drlog")
    ap.add_argument("--tree-exe", required=True, help="the built tests/tree.rs binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tail-runs", type=int, default=20, help="runs per backend in the tails case")
    ap.add_argument("--command", default="integration/bench.sh")
    ap.add_argument("--cases", default="pause,timeline,freeze,survivors,idle,restart,logs,control,tails,record")
    ap.add_argument("--merge", action="store_true",
                    help="replace only the numbered sections this run measured in the existing benchmarks.md")
    args = ap.parse_args()

    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    m = machine()
    suite = Suite(args)
    try:
        for case in args.cases.split(","):
            getattr(suite, f"case_{case}")()
        figures = plots(suite, os.path.join(args.out, "img"))
        text = report(suite, m, figures, args.command)
        if args.merge:
            with open(os.path.join(args.out, "benchmarks.md")) as f:
                old = f.read()
            text = merge(old[:-1] if old.endswith("\n") else old, text)
        with open(os.path.join(args.out, "benchmarks.md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(suite.work, "results.json"), "w") as f:
            json.dump({k: v for k, v in suite.results.items() if k != "survivors"}, f)
        print(os.path.join(args.out, "benchmarks.md"))
    finally:
        cleanup()
        shutil.rmtree(suite.work, ignore_errors=True)


if __name__ == "__main__":
    main()
