#!/bin/sh
# Benchmark of whole-tree control, per backend (see docs/tree.md). Needs root.
#
#   integration/bench-tree.sh            # sizes 10 100 1000
#   SIZES="10 100" integration/bench-tree.sh
#   BACKENDS=signals integration/bench-tree.sh
#
# Prints, per backend and tree size: the time from the decision to a fully
# stopped tree and to a fully killed tree, and the CPU ticks the tree used in 2 s
# while paused; then dmon's wake-ups per minute while idle with -L; then the pause
# case side by side with loadwatch (Debian package), whose stop reaches only the
# command's process group. Figures are for comparing backends on one machine:
# read them as ratios.
set -eu
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"10 100 1000"}
IDLE_SECONDS=${IDLE_SECONDS:-30}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

if [ "$(id -u)" != 0 ]; then
    echo "bench-tree: needs root (cgroups)" >&2
    exit 1
fi

echo "== stop and kill, per backend"
DMON_BENCH_SIZES="$SIZES" DMON_BENCH_BACKENDS=${BACKENDS:-"cgroup2 freezer signals"} cargo test -q --release --test tree -- --ignored --nocapture bench_backends 2>/dev/null |
    grep -E '^(backend|cgroup2|freezer|signals) '
cargo build -q --release --bin dmon
DMON=$CARGO_TARGET_DIR/release/dmon

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Context switches of a process (each wake-up is one).
switches() {
    awk '/^(voluntary|nonvoluntary)_ctxt_switches/ { n += $2 } END { print n }' "/proc/$1/status"
}

echo
echo "== idle wake-ups per minute (${IDLE_SECONDS} s, command: sleep)"
"$DMON" -n -L 1000 sleep 100000 </dev/null 2>/dev/null &
pid=$!
sleep 1
a=$(switches "$pid")
sleep "$IDLE_SECONDS"
b=$(switches "$pid")
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
echo "dmon -L (reads /proc/loadavg when the kernel updates it): $(( (b - a) * 60 / IDLE_SECONDS ))/min"
"$DMON" -n sleep 100000 </dev/null 2>/dev/null &
pid=$!
sleep 1
a=$(switches "$pid")
sleep "$IDLE_SECONDS"
b=$(switches "$pid")
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
echo "dmon without -L: $(( (b - a) * 60 / IDLE_SECONDS ))/min"

# A tree of $1 busy processes, two of them double-forked with setsid, tagged $2.
tree_script() {
    cat <<EOF
i=3; while [ \$i -lt $1 ]; do ( while :; do :; done ) & i=\$((i+1)); done
( setsid sh -c 'while :; do :; done' $2 & ); ( setsid sh -c 'while :; do :; done' $2 & )
while :; do :; done
EOF
}

# Processes tagged $1: count, running (state R), CPU ticks.
census() {
    for d in /proc/[0-9]*; do
        if tr '\0' ' ' 2>/dev/null <"$d/cmdline" | grep -q -- "$1"; then
            sed 's/.*) //' "$d/stat" 2>/dev/null | awk '{ print $1, $12 + $13 }'
        fi
    done | awk '$1 != "Z" { n++; if ($1 == "R") r++; t += $2 } END { printf "%d %d %d\n", n, r, t }'
}

wait_for_count() { # tag count
    for _ in $(seq 600); do
        set -- "$1" "$2" $(census "$1")
        [ "$3" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

paused_cpu() { # tag -> "running-processes ticks-in-2s"
    set -- "$1" $(census "$1")
    before=$4
    sleep 2
    set -- "$1" $(census "$1")
    echo "$3 $(( $4 - before ))"
}

echo
echo "== pause, side by side with loadwatch (2 of the processes are setsid'd)"
printf '%-10s %6s %16s %14s\n' tool procs "still running" "paused ticks"
for size in $SIZES; do
    [ "$size" -gt 200 ] && continue # loadwatch's walk is per group; keep it quick
    tag="bench-lw-$$-$size"
    tree_script "$size" "$tag" >"$work/tree.sh"
    if command -v loadwatch >/dev/null; then
        loadwatch -d 1 -h 0.01 -l 0.001 -- sh "$work/tree.sh" "$tag" >/dev/null 2>&1 &
        lw=$!
        wait_for_count "$tag" "$size"
        sleep 2 # loadwatch samples every second and stops the group above the mark
        set -- $(paused_cpu "$tag")
        printf '%-10s %6s %16s %14s\n' loadwatch "$size" "$1" "$2"
        kill -TERM "$lw" 2>/dev/null || true
        pkill -KILL -f -- "$tag" || true
        wait "$lw" 2>/dev/null || true
    fi
    for backend in cgroup2 freezer signals; do
        echo 0.1 >"$work/load"
        tag="bench-dm-$$-$backend-$size"
        tree_script "$size" "$tag" >"$work/tree.sh"
        DMON_LOADAVG_FILE="$work/load" "$DMON" -n --grace 1 --tree "$backend" -I "$work/status-$backend-$size" \
            -L 5 -l 1 sh "$work/tree.sh" "$tag" </dev/null 2>/dev/null &
        dm=$!
        wait_for_count "$tag" "$size"
        echo 9 >"$work/load"
        for _ in $(seq 300); do grep -q 'cmd pause' "$work/status-$backend-$size" && break; sleep 0.1; done
        set -- $(paused_cpu "$tag")
        printf '%-10s %6s %16s %14s\n' "dmon/$backend" "$size" "$1" "$2"
        kill -TERM "$dm"
        wait "$dm" 2>/dev/null || true
    done
done
