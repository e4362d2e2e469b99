#!/usr/bin/env bash
# Measure the README's main job (`make book`) as a newcomer meets it: a fresh clone, a fresh model cache and
# a fresh generation cache. Prints wall time, the largest single process (GNU time -v) and the peak memory
# used by the whole machine while it ran (sampled every 2 s from /proc/meminfo, so it includes vLLM's
# engine processes). Then runs `make book` a second time in the same clone to time the cached rerun.
#   usage: bash benchmarks/measure_main_job.sh [WORKDIR]     (default: a new folder under /tmp)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
git clone -q "$repo" "$work/clone"
export PERSONALAB_CACHE="$work/model-cache"

used_kib() { awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{print t-a}' /proc/meminfo; }
baseline=$(used_kib)
peak_file="$work/peak_kib"
echo "$baseline" > "$peak_file"
( while sleep 2; do u=$(used_kib); p=$(cat "$peak_file"); [ "$u" -gt "$p" ] && echo "$u" > "$peak_file"; done ) &
sampler=$!
trap 'kill $sampler 2>/dev/null || true' EXIT

cd "$work/clone"
start=$(date +%s)
/usr/bin/time -v -o "$work/time-cold.txt" make book > "$work/make-book-cold.log" 2>&1
cold=$(( $(date +%s) - start ))
# Requests answered from the cache during the cold run: within a fresh cache, that is reuse across experiments
# (and within one) of identical requests, which the generation cache's content-addressed keys make automatic.
share=$("$work/clone/.venv/bin/python" - <<'PY'
import json, pathlib
n = hit = 0
for f in pathlib.Path("experiments/results").glob("*/*/provenance.json"):
    g = json.loads(f.read_text()).get("generations") or {}
    n += g.get("n", 0); hit += g.get("from_cache", 0)
print(f"{hit} of {n} generations ({hit / max(n, 1):.1%})")
PY
)
start=$(date +%s)
/usr/bin/time -v -o "$work/time-warm.txt" make book > "$work/make-book-warm.log" 2>&1
warm=$(( $(date +%s) - start ))
kill $sampler 2>/dev/null || true

peak=$(cat "$peak_file")
maxrss=$(awk -F: '/Maximum resident set size/{gsub(/ /,"",$2); print $2}' "$work/time-cold.txt")
echo "main job, fresh clone and caches: $(( cold / 60 )) min $(( cold % 60 )) s"
echo "answered from the cache in the cold run: $share"
echo "second run, nothing changed:      $(( warm / 60 )) min $(( warm % 60 )) s"
echo "peak memory used by the machine:  $(( peak / 1048576 )).$(( (peak % 1048576) * 10 / 1048576 )) GiB (before the run: $(( baseline / 1048576 )).$(( (baseline % 1048576) * 10 / 1048576 )) GiB)"
echo "largest single process (GNU time): $(( maxrss / 1024 )) MiB"
echo "logs and GNU time reports: $work"
