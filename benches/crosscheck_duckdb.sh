#!/usr/bin/env bash
# doudi's nightly cross-check against the same nine checks in DuckDB SQL (benches/crosscheck_duckdb.py),
# end to end, on one generated data set: whole-process time and peak memory of each, and a check
# that both found the same findings.
#
#   benches/crosscheck_duckdb.sh [HOUSEHOLDS] [THREADS]      (defaults: 100000 and 2)
#
# Environment: DOUDI (the binary; default target/release/doudi: build it with
# `cargo build --release --bin doudi`), DUCKDB_VENV (default /tmp/doudi-duckdb, made with DuckDB
# from PyPI when missing), WORK (default /tmp/doudi-crossduck-HOUSEHOLDS: the data, the store and
# the reports; kept and reused). THREADS=1 runs both on one processor (taskset -c 0): doudi takes
# its threads from the processors it may use, DuckDB from `SET threads`.
# doudi's figure is a re-run of the same night on the same store: every finding is still open and
# is refreshed, as on most nights.
set -euo pipefail
cd "$(dirname "$0")/.."
HOUSEHOLDS=${1:-100000}
THREADS=${2:-2}
DOUDI=${DOUDI:-target/release/doudi}
VENV=${DUCKDB_VENV:-/tmp/doudi-duckdb}
WORK=${WORK:-/tmp/doudi-crossduck-$HOUSEHOLDS}
DOUDI=$(realpath "$DOUDI")

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet duckdb
fi
mkdir -p "$WORK"
export DOUDI_DB="sqlite://$WORK/doudi.sqlite"
if [ ! -f "$WORK/data/register.jsonl" ]; then
    "$DOUDI" gen --households "$HOUSEHOLDS" --seed 1 --out "$WORK/data" >/dev/null
fi
if [ ! -f "$WORK/doudi.sqlite" ]; then
    "$DOUDI" import "$WORK/data/register.jsonl" >/dev/null
    # the first night opens the findings
    "$DOUDI" crosscheck --snapshots "$WORK/data/snapshots" --work-dir "$WORK/nowork" --out "$WORK/report" >/dev/null || true
fi

pin=()
if [ "$THREADS" = 1 ]; then pin=(taskset -c 0); fi
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== doudi crosscheck ($THREADS thread(s))"
rm -rf "$WORK/nowork"
/usr/bin/time -f 'doudi: %e s wall, %U s user, %S s sys, %M KiB peak' \
    "${pin[@]}" "$DOUDI" crosscheck --snapshots "$WORK/data/snapshots" --work-dir "$WORK/nowork" \
    --out "$WORK/report" >/dev/null || true
echo "== DuckDB ($THREADS thread(s))"
/usr/bin/time -f 'duckdb: %e s wall, %U s user, %S s sys, %M KiB peak' \
    "${pin[@]}" "$VENV/bin/python" benches/crosscheck_duckdb.py --data "$WORK/data" --threads "$THREADS" \
    --compare "$WORK/report/findings.csv"
