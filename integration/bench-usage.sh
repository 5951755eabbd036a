#!/bin/sh
# The cost of the usage record in the exit record (docs/status.md, "Usage").
#
#     integration/bench-usage.sh BEFORE AFTER [RUNS] [ROUNDS]
#
# BEFORE and AFTER are two dmon binaries, without and with the record. Each runs
# a crash loop of `true` without back-off (`--backoff-max 0`), RUNS runs (1000)
# with `-I FILE --status-format json`, per backend (`--tree cgroup2`, `freezer`,
# `signals`), alternating the two binaries in each of ROUNDS rounds (3). Every
# run of `true` is the same in both, so the difference per run is what the
# record costs between the empty tree and the next start: reading the leaf's
# counters before the start and at the end, and the longer line. Prints the
# best round's wall time per run and dmon's own CPU time per run (perf stat
# --no-inherit, without its children's), in µs. Needs root and perf.
set -eu
before=$1 after=$2 runs=${3:-1000} rounds=${4:-3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# "wall cpu": µs per run of one crash loop.
per_run() {
    rm -f "$dir/status"
    start=$(date +%s%N)
    perf stat --no-inherit -e task-clock -x, -o "$dir/perf" -- \
        "$1" -n --tree "$2" -m "$runs" --backoff-max 0 -I "$dir/status" --status-format json true
    end=$(date +%s%N)
    cpu_ms=$(grep task-clock "$dir/perf" | cut -d, -f1)
    echo "$(((end - start) / 1000 / (runs + 1))) $(echo "$cpu_ms * 1000 / ($runs + 1)" | bc)"
}

# The smallest of the column $1 of the lines on stdin.
best() { cut -d' ' -f"$1" | sort -n | head -n 1; }

printf '%-8s %12s %12s %12s %12s\n' backend "wall before" "wall after" "cpu before" "cpu after"
for backend in cgroup2 freezer signals; do
    : >"$dir/before" && : >"$dir/after"
    i=0
    while [ "$i" -lt "$rounds" ]; do
        per_run "$before" "$backend" >>"$dir/before"
        per_run "$after" "$backend" >>"$dir/after"
        i=$((i + 1))
    done
    printf '%-8s %12s %12s %12s %12s\n' "$backend" "$(best 1 <"$dir/before")" "$(best 1 <"$dir/after")" \
        "$(best 2 <"$dir/before")" "$(best 2 <"$dir/after")"
done
