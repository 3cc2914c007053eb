#!/bin/bash
# Train a published profile in the background, from a clean clone of this checkout's HEAD, so that
# every row and model it stores names a committed commit (issue 15: the full-data CIFAR-10 graph,
# trained across sessions). Models already published in data/weights/ are read, not trained again.
#
#   nohup setsid tools/background_build.sh [WORKDIR] > /dev/null 2>&1 &   # log: WORKDIR/logs/run.log
#   .venv/bin/akt publish --from WORKDIR/data --profile full-data      # after each finished model,
#   git add data/weights data/results/full-data && git commit ...      # then commit what it added
#
# PROFILE, DATASET, SEEDS, BUILDS, BLACKBOX (held-out, or static: issue 40's step 4, re-scoring with
# the published static sources) and PRECISION (fp32, or bf16: bf16 autocast, issue 40) (environment)
# override the defaults below; AKT_DATA_ROOT defaults to
# this checkout's data/datasets (make data). JOB=choices runs tools/measure_choices.py per seed
# instead (issue 20: the unstated choices on the reduced profile; ONLY="decay ..." measures only
# those, in that order; merge its rows back with tools/merge_rows.py --choices-only). Stop it with: kill -- -$(cat WORKDIR/logs/pid)
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/work/bg}
PROFILE=${PROFILE:-full-data}
DATASET=${DATASET:-cifar10}
SEEDS=${SEEDS:-"0 1"}
JOB=${JOB:-graph}
BUILDS=${BUILDS:-"all whitebox sweep"}
BLACKBOX=${BLACKBOX:-held-out}
PRECISION=${PRECISION:-fp32}
case "$PRECISION" in
  fp32) arith=() ;;
  bf16) arith=(--bf16) ;;
  *) echo "PRECISION=$PRECISION is unknown; valid choices: fp32, bf16" >&2; exit 2 ;;
esac
PY=${PY:-$HERE/.venv/bin/python}
export AKT_DATA_ROOT=${AKT_DATA_ROOT:-$HERE/data/datasets}
if [ ! -d "$WORK/.git" ]; then
  git clone -q "$HERE" "$WORK"
  mkdir -p "$WORK/logs"
else
  # The run's own rows (untracked there until this checkout publishes them) would block checking out
  # a HEAD that has published some: keep them aside, check out, and merge them back row by row.
  mkdir -p "$WORK/logs"
  # Every store the run writes to: the published results and the measurement stores under data/reruns.
  keep="$WORK/logs/rows-$(date +%Y%m%dT%H%M%S)"
  stores=()
  for dir in "data/results/$PROFILE" data/reruns/*/results/"$PROFILE"; do
    if [ -d "$WORK/$dir" ] && [ -n "$(git -C "$WORK" status --porcelain -- "$dir")" ]; then
      mkdir -p "$keep/$dir" && cp -p "$WORK/$dir"/*.csv "$keep/$dir"/ && stores+=("$dir")
    fi
  done
  if ! { git -C "$WORK" fetch -q "$HERE" HEAD && git -C "$WORK" checkout -q -f --detach FETCH_HEAD \
         && git -C "$WORK" clean -q -f -- "data/results/$PROFILE" data/reruns; }; then
    echo "=== $(date -Is) cannot check out the HEAD of $HERE in $WORK: not running stale code" >> "$WORK/logs/run.log"
    exit 1
  fi
  for dir in "${stores[@]}"; do  # STORE_ROOT/results/PROFILE -> STORE_ROOT
    if ! (cd "$WORK" && "$PY" tools/merge_rows.py "$keep/$dir" "$PROFILE" "${dir%/results/*}" >> logs/run.log 2>&1); then
      echo "=== $(date -Is) cannot merge the rows kept in $keep/$dir" >> "$WORK/logs/run.log"
      exit 1
    fi
  done
fi
echo $$ > "$WORK/logs/pid"
cd "$WORK"
echo "=== $(date -Is) $PROFILE $DATASET seeds $SEEDS ($BLACKBOX black box, $PRECISION) at $(git rev-parse --short=12 HEAD)" >> logs/run.log
for seed in $SEEDS; do
  if [ "$JOB" = choices ]; then
    echo "=== $(date -Is) unstated choices seed $seed" >> logs/run.log
    "$PY" tools/measure_choices.py --seed "$seed" ${ONLY:+--only $ONLY} >> logs/run.log 2>&1 \
      || echo "FAILED choices seed $seed" >> logs/run.log
    continue
  fi
  for what in $BUILDS; do
    echo "=== $(date -Is) build $what seed $seed ($BLACKBOX)" >> logs/run.log
    "$PY" -m akt_core.cli build "$what" --dataset "$DATASET" --profile "$PROFILE" --seed "$seed" \
      --blackbox "$BLACKBOX" --device cpu "${arith[@]}" --quiet >> logs/run.log 2>&1 || echo "FAILED $what seed $seed" >> logs/run.log
  done
done
echo "=== $(date -Is) done" >> logs/run.log
