#!/bin/bash
# Train a published profile in the background, from a clean clone of this checkout's HEAD, so that
# every row and model it stores names a committed commit (issue 15: the full-data CIFAR-10 graph,
# trained across sessions). Models already published in data/weights/ are read, not trained again.
#
#   nohup tools/background_build.sh [WORKDIR] > /dev/null 2>&1 &      # log: WORKDIR/logs/run.log
#   .venv/bin/akt publish --from WORKDIR/data --profile full-data      # after each finished model,
#   git add data/weights data/results/full-data && git commit ...      # then commit what it added
#
# PROFILE, DATASET and SEEDS (environment) override the defaults below; AKT_DATA_ROOT defaults to
# this checkout's data/datasets (make data). Stop it with: kill -- -$(cat WORKDIR/logs/pid)
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/work/bg}
PROFILE=${PROFILE:-full-data}
DATASET=${DATASET:-cifar10}
SEEDS=${SEEDS:-"0 1"}
PY=${PY:-$HERE/.venv/bin/python}
export AKT_DATA_ROOT=${AKT_DATA_ROOT:-$HERE/data/datasets}
if [ ! -d "$WORK/.git" ]; then
  git clone -q "$HERE" "$WORK"
else
  git -C "$WORK" fetch -q "$HERE" HEAD && git -C "$WORK" checkout -q --detach FETCH_HEAD
fi
mkdir -p "$WORK/logs"
echo $$ > "$WORK/logs/pid"
cd "$WORK"
echo "=== $(date -Is) $PROFILE $DATASET seeds $SEEDS at $(git rev-parse --short=12 HEAD)" >> logs/run.log
for seed in $SEEDS; do
  for what in all whitebox sweep; do
    echo "=== $(date -Is) build $what seed $seed" >> logs/run.log
    "$PY" -m akt_core.cli build "$what" --dataset "$DATASET" --profile "$PROFILE" --seed "$seed" \
      --device cpu --quiet >> logs/run.log 2>&1 || echo "FAILED $what seed $seed" >> logs/run.log
  done
done
echo "=== $(date -Is) done" >> logs/run.log
