#!/bin/sh
# Lines per second of dlog (durable and -b) and drlog against multilog
# (daemontools), svlogd (runit) and s6-log (s6), on the same input, the same
# disk, in one run. Each tool reads the input from a pipe (`cat FILE | tool`);
# the time is the wall time until the tool has exited, so its last sync counts.
#
#   integration/bench-logs.sh [LINES] [RUNS]
#
# LINES (default 2000000) lines of 100 bytes; RUNS (default 3) rounds, each
# running every tool once in turn; the median rate of each tool is reported.
# BENCH_DIR picks the directory (on the disk to measure; default a new
# directory under /var/tmp), CARGO_TARGET_DIR the build, BENCH_BIN a directory
# with dlog and drlog already built (no build then). BENCH_LOGS_RESULTS names a
# file that gets one "TOOL RATE" line per tool (for integration/bench.sh).
# Installs daemontools, runit and s6 from Debian's packages when missing (root).
set -eu

lines=${1:-2000000}
runs=${2:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

missing=
command -v multilog >/dev/null 2>&1 || missing="$missing daemontools"
command -v svlogd >/dev/null 2>&1 || missing="$missing runit"
command -v s6-log >/dev/null 2>&1 || missing="$missing s6"
if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if [ -z "${BENCH_BIN:-}" ]; then
    (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release --quiet --bin dlog --bin drlog)
    BENCH_BIN=$target/release
fi
dlog=$BENCH_BIN/dlog
drlog=$BENCH_BIN/drlog

work=${BENCH_DIR:-$(mktemp -d /var/tmp/dmon-bench.XXXXXX)}
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
input=$work/input
python3 - "$input" "$lines" <<'PY'
import sys
path, count = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(count):
        head = "line %09d " % i
        f.write(head + "x" * (99 - len(head)) + "\n")
PY

now() { date +%s%N; }

# run NAME COMMAND: runs COMMAND once (reading the input on stdin, writing
# under $out); appends NAME and the rate to $results; checks no line was lost.
results=$work/results
: >"$results"
run() {
    name=$1
    shift
    out=$work/out
    export out
    rm -rf "$out"
    mkdir -p "$out"
    sync
    start=$(now)
    cat "$input" | sh -c "$*" 2>/dev/null
    end=$(now)
    # The log files only: current and rotated ones, not lock, state or config.
    got=$(cd "$out" && cat current log log-* @* 2>/dev/null | wc -l)
    if [ "$got" -ne "$lines" ]; then
        echo "$name: logged $got of $lines lines" >&2
        exit 1
    fi
    printf '%s %s\n' "$name" $(( lines * 1000000000 / (end - start) )) >>"$results"
}

size=16777215
echo "$lines lines of 100 bytes, median of $runs rounds, in $work ($(df -T "$work" | awk 'NR==2 {print $2}'))"
i=0
while [ $i -lt "$runs" ]; do
    run "multilog (daemontools)" "multilog s$size n1000 \$out"
    run "svlogd (runit)" "printf 's$size\nn1000\n' >\$out/config; svlogd -b 65536 \$out"
    run "s6-log (s6)" "s6-log -b n1000 s$size \$out"
    run "dlog" "$dlog \$out/log"
    run "dlog -b" "$dlog -b \$out/log"
    run "drlog" "$drlog -s 16m -m 1000 \$out"
    run "drlog -b" "$drlog -b -s 16m -m 1000 \$out"
    i=$((i + 1))
done
# Median per tool, in the order of first appearance.
medians=$work/medians
awk '
    { name = $0; sub(/ [0-9]+$/, "", name); if (!(name in n)) order[++k] = name; v[name, ++n[name]] = $NF }
    END {
        for (i = 1; i <= k; i++) {
            name = order[i]; c = n[name]
            for (a = 1; a <= c; a++) x[a] = v[name, a]
            for (a = 1; a <= c; a++) for (b = a + 1; b <= c; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
            m = (c % 2) ? x[(c + 1) / 2] : (x[c / 2] + x[c / 2 + 1]) / 2
            printf "%s %d\n", name, m
        }
    }
' "$results" >"$medians"
awk '{ r = $NF; sub(/ [0-9]+$/, ""); printf "%-26s %10s lines/s\n", $0, r }' "$medians"
[ -n "${BENCH_LOGS_RESULTS:-}" ] && cp "$medians" "$BENCH_LOGS_RESULTS"

echo
echo "ratios (rows over columns):"
awk '
    { name[NR] = $0; sub(/ [0-9]+$/, "", name[NR]); rate[NR] = $NF }
    END {
        printf "%-26s %10s %10s %10s\n", "", "multilog", "svlogd", "s6-log"
        for (i = 4; i <= NR; i++)
            printf "%-26s %9.2fx %9.2fx %9.2fx\n", name[i], rate[i] / rate[1], rate[i] / rate[2], rate[i] / rate[3]
    }
' "$medians"
