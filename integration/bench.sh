#!/bin/sh
# The benchmark suite: dmon next to its peers, every case in one run, written
# to docs/benchmarks.md with plots in docs/img/. Needs root (cgroups, packages).
#
#   integration/bench.sh            # the full run (about 25 minutes on 2 CPUs)
#   integration/bench.sh --quick    # every case, briefly, to check that it runs
#
# Options: --quick; --out DIR (default docs/); --rounds N (default 3).
# BENCH_BIN=DIR uses the dmon, dlog and drlog in DIR and BENCH_TREE_EXE=FILE
# that tests/tree.rs binary instead of building them (`cargo build --release`
# and `cargo test --release --test tree --no-run`, in CARGO_TARGET_DIR or target/).
# Installs daemontools, runit, s6, loadwatch, cpulimit and gnuplot-nox from
# Debian's packages when they are missing. Times are not judged: the page gives
# medians and ratios between tools measured side by side.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/docs
quick=
rounds=3
command="integration/bench.sh"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=--quick; command="$command --quick" ;;
    --out) out=$2; shift ;;
    --rounds) rounds=$2; command="$command --rounds $2"; shift ;;
    *) echo "usage: integration/bench.sh [--quick] [--out DIR] [--rounds N]" >&2; exit 2 ;;
    esac
    shift
done

if [ "$(id -u)" != 0 ]; then
    echo "bench: needs root (cgroups, Debian packages)" >&2
    exit 1
fi

missing=
for pair in multilog:daemontools supervise:daemontools runsv:runit svlogd:runit \
    s6-supervise:s6 s6-log:s6 loadwatch:loadwatch cpulimit:cpulimit gnuplot:gnuplot-nox \
    python3:python3 setsid:util-linux; do
    command -v "${pair%%:*}" >/dev/null 2>&1 && continue
    case " $missing " in *" ${pair#*:} "*) ;; *) missing="$missing ${pair#*:}" ;; esac
done
if [ -n "$missing" ]; then
    echo "bench: installing:$missing" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

target=${CARGO_TARGET_DIR:-$repo/target}
bin=${BENCH_BIN:-}
tree_exe=${BENCH_TREE_EXE:-}
if [ -z "$bin" ]; then
    echo "bench: cargo build --release" >&2
    (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release --quiet)
    bin=$target/release
fi
if [ -z "$tree_exe" ]; then
    tree_exe=$(cd "$repo" && CARGO_TARGET_DIR=$target cargo test --release --quiet --test tree --no-run --message-format=json |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "tree" and m.get("executable"):
        print(m["executable"])')
fi

mkdir -p "$out"
exec python3 "$repo/integration/bench.py" $quick --out "$out" --bin "$bin" --tree-exe "$tree_exe" \
    --rounds "$rounds" --command "$command"
