#!/bin/sh
# `doudi linkage eval` at scale: generated sets of N households (default 10000 and 100000; pass
# sizes as arguments, e.g. `benches/linkage_eval.sh 10000 100000 300000`), with and without ID
# numbers, each timed once with its peak memory (GNU time's "Maximum resident set size").
#
# Uses $DOUDI_BIN, else target/release/doudi if it exists, else target/debug/doudi (the linkage
# crate is built at opt-level 2 in test builds too); sets are generated with $DOUDI_GEN_BIN (default
# the same binary), so two builds can be measured on the very same files. Columns: blocking recall
# (true pairs among the candidates), precision, recall, F1, and how the left records would be
# decided (linked / to review / unmatched; in brackets those with a true pair). The machine's load changes the times: compare sizes within one
# run, not runs between machines.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${DOUDI_BIN:-$root/target/release/doudi}
[ -x "$bin" ] || bin=$root/target/debug/doudi
work=${DOUDI_BENCH_DIR:-$(mktemp -d)}
[ $# -gt 0 ] || set -- 10000 100000
printf '%-10s %-8s %10s %12s %10s %8s %8s %8s %8s %8s %10s %10s  %s\n' households ids records \
    register candidates pairs/rec blk_rec P R F1 seconds peak_MiB 'linked/review/unmatched (with a true pair)'
for n in "$@"; do
    for ids in with without; do
        dir=$work/$n-$ids
        rm -rf "$dir"
        flag=""
        [ "$ids" = without ] && flag=--eval-without-id
        "${DOUDI_GEN_BIN:-$bin}" gen --households "$n" --seed 7 --out "$dir" --eval-csv $flag >/dev/null
        cd "$dir/eval"
        /usr/bin/time -v "$bin" linkage eval --spec spec.toml --left records.csv \
            --right register.csv --truth truth.csv --json >report.json 2>time.txt
        python3 - "$n" "$ids" <<'PY'
import json, re, sys
r = json.load(open("report.json"))
t = open("time.txt").read()
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1)
secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
f = lambda x: "-" if x is None else f"{x:.4f}"
d = r.get("decisions")
dec = (f"{d['linked']}/{d['review']} ({d['review_with_truth']})/{d['unmatched']} "
       f"({d['unmatched_with_truth']})") if d else "-"
print(f"{sys.argv[1]:<10} {sys.argv[2]:<8} {r['left_records']:>10} {r['right_records']:>12} "
      f"{r['candidate_pairs']:>10} {r['candidate_pairs'] / r['left_records']:>8.1f} "
      f"{f(r['truth_pairs_in_candidates'] / max(r['truth_pairs'], 1)):>8} "
      f"{f(r['precision']):>8} {f(r['recall']):>8} {r['f1']:>8.4f} {secs:>10.1f} {rss:>10.0f}  {dec}")
PY
        cd - >/dev/null
        rm -rf "$dir"
    done
done
