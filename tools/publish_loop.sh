#!/bin/bash
# Publish and commit each finished model of a background build as soon as it is done (issue 40: a
# stopped run loses at most the model in progress). Every INTERVAL seconds: `akt publish` from the
# build's store, then, when data/weights or data/results/PROFILE changed, one commit of exactly those
# paths (pathspec: nothing else staged in this checkout is committed), its message naming each newly
# published model with its clean accuracy and training wall time.
#
#   nohup setsid tools/publish_loop.sh /work/bg > /dev/null 2>&1 &    # log: WORKDIR/logs/publish.log
#
# PROFILE (default full-data) and INTERVAL (default 300) override. Stops when the build's log says done (a line
# written after the loop started).
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/work/bg}
PROFILE=${PROFILE:-full-data}
INTERVAL=${INTERVAL:-300}
PY=$HERE/.venv/bin/python
LOG=$WORK/logs/publish.log
cd "$HERE"
paths=(data/weights "data/results/$PROFILE")
done_lines() { grep -c "=== .* done" "$WORK/logs/run.log" 2>/dev/null; }
# The build's log is appended across runs: stop on a "done" line written after this loop started.
start=$(done_lines)
while true; do
  finished=$(( $(done_lines) - start ))
  before=$(mktemp)
  cp data/weights/manifest.csv "$before"
  if "$PY" -m akt_core.cli publish --from "$WORK/data" --profile "$PROFILE" >> "$LOG" 2>&1; then
    if [ -n "$(git status --porcelain -- "${paths[@]}")" ]; then
      git add -- "${paths[@]}"
      lines=$(git diff --cached --numstat -- "${paths[@]}" | awk '{s += $1} END {print s + 0}')
      files=$(git diff --cached --name-only -- "${paths[@]}" | tr '\n' ' ')
      msg=$("$PY" - "$before" "$PROFILE" "$lines" "$files" <<'PYEOF'
import sys
import pandas as pd
old, profile = pd.read_csv(sys.argv[1]), sys.argv[2]
new = pd.read_csv("data/weights/manifest.csv")
runs = pd.read_csv(f"data/results/{profile}/runs.csv")
wall = dict(zip(runs["key"], runs["wall_s"]))
added = new[~new["key"].isin(old["key"])]
parts = [f"{r.name} seed {r.seed} ({r.dataset}) {r.clean_acc:.2f} % clean, {wall.get(r.key, float('nan')):.0f} s"
         for r in added.itertuples()]
head = "; ".join(parts) if parts else f"{sys.argv[3]} lines added to {sys.argv[4].strip()}"
dev = added["device"].iloc[0] if len(added) else ""
print(f"Issue 40: {profile} published: {head}" + (f" ({dev}; background build)" if dev else ""))
PYEOF
)
      for try in 1 2 3; do
        if git add -- "${paths[@]}" && git commit -q -m "$msg" -- "${paths[@]}" >> "$LOG" 2>&1; then
          echo "$(date -Is) committed: $msg" >> "$LOG"; break
        fi
        sleep 5   # another git command held the index lock
      done
    fi
  else
    echo "$(date -Is) publish failed (see above)" >> "$LOG"
  fi
  rm -f "$before"
  [ "$finished" -gt 0 ] && break
  sleep "$INTERVAL"
done
