#!/usr/bin/env bash
# One device command for a lent GPU (issue 2), each part bounded so that the whole fits one
# 10-minute command. Logs, benchmark JSON and the paper profile's result CSVs land in $OUT (the
# device tool brings that folder back; benchmarks/gpu_results/ keeps what earlier sessions got).
#
#   bash benchmarks/gpu_session.sh [SECONDS [PART...]]      # default: 540 paper
#
# PARTs, run in the order given:
#   paper   `akt build all --dataset $DATASET --profile paper --jobs $JOBS` (the dataset's three tables
#           and Figs. 3-4; DATASET default mnist, one per call since a CIFAR pack fills the working
#           tree; JOBS default 4 training processes): issue 21's target is all three datasets in 12
#           minutes of device time; AKT_OPTS=--cuda-graphs replays the training steps as CUDA graphs
#   bench   benchmarks/gpu.py: layouts, precisions, every paper method; bf16 vs fp32 on results
#   sweep   `akt build sweep` of the paper profile on MNIST (after `paper`, reusing its models)
#   smoke   the smoke profile on synthetic data (a one-minute plumbing check)
#   graphs  benchmarks/gpu.py --parts graphs: the training step eager and as a replayed CUDA graph
#           (about half a minute): how much of a step is kernel-launch overhead
#   stacked benchmarks/gpu.py --parts stacked: 1, 2 and 4 Res26 one after another and in one vmapped
#           step: whether stacking independent models pays while steps are launch-bound
#
# Expects the offline copy of $DATASET in $SOURCE (default .device/, an ignored folder the device
# call carries): $SOURCE/mnist (the IDX files, as in ../shared/data), or for CIFAR a lossy pack
# $SOURCE/$DATASET.npz (tools/device_pack.py pack $DATASET .device/$DATASET.npz), unpacked here; the device
# call carries) and python3 with torch; AKT_GIT_COMMIT names the commit,
# since the device copy of the tree may have no git history. Extra `akt` options: $AKT_OPTS.
set -u
budget=${1:-540}
t0=$(date +%s)
left() { echo $((budget - ($(date +%s) - t0))); }
OUT=${OUT:-/tmp/akt-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
export AKT_STORE=${AKT_STORE:-/tmp/akt-store} AKT_DATA_ROOT=${AKT_DATA_ROOT:-/tmp/akt-data}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
log=$OUT/session.log

run() {  # run NAME SECONDS COMMAND...: bounded by SIGINT (a killed build keeps what it stored)
    local name=$1 secs=$2
    shift 2
    if [ "$secs" -lt 20 ]; then
        echo "== $name: skipped, ${secs}s left for it" | tee -a "$log"
        return
    fi
    echo "== $name (at most ${secs}s; $(left)s left)" | tee -a "$log"
    local s
    s=$(date +%s)
    timeout -s INT -k 15 "$secs" "$@" >>"$log" 2>&1
    echo "== $name: exit $? after $(($(date +%s) - s))s" | tee -a "$log"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>&1
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
    echo "commit ${AKT_GIT_COMMIT:-unknown}"
} >>"$log" 2>&1
pack="${SOURCE:-.device}/${DATASET:-mnist}.npz"
if [ -f "$pack" ] && [ ! -d "$AKT_DATA_ROOT/${DATASET:-mnist}" ]; then  # a CIFAR pack: a lossy jpeg75 copy, labelled so
  "$PY" tools/device_pack.py unpack "$pack" "$AKT_DATA_ROOT" >>"$log" 2>&1
elif [ ! -f "$pack" ]; then
  "$PY" -m akt_core.cli prepare-data --source "${SOURCE:-.device}" --root "$AKT_DATA_ROOT" --datasets "${DATASET:-mnist}" >>"$log" 2>&1
fi

parts=("${@:2}")
[ ${#parts[@]} -eq 0 ] && parts=(paper)
for part in "${parts[@]}"; do
    case $part in
    smoke) run "plumbing: smoke profile on synthetic data" $(($(left) < 60 ? $(left) : 60)) \
        "$PY" -m akt_core.cli build all --dataset synthetic --profile smoke --device "$DEVICE" --quiet ${AKT_OPTS:-} ;;
    paper) run "paper profile, ${DATASET:-mnist}: build all (its three tables; Figs. 3-4), --jobs ${JOBS:-4}" $(($(left) - 10)) \
        "$PY" -m akt_core.cli build all --dataset "${DATASET:-mnist}" --profile paper --device "$DEVICE" --quiet \
        --jobs "${JOBS:-4}" ${AKT_OPTS:-} ;;
    sweep) run "paper profile, MNIST: eps sweep" $(($(left) - 10)) \
        "$PY" -m akt_core.cli build sweep --dataset mnist --profile paper --device "$DEVICE" --quiet ${AKT_OPTS:-} ;;
    bench) run "benchmarks/gpu.py" $(($(left) - 10)) "$PY" benchmarks/gpu.py --out "$OUT/gpu_bench.json" ;;
    graphs) run "benchmarks/gpu.py --parts graphs" $(($(left) - 10)) \
        "$PY" benchmarks/gpu.py --parts graphs --out "$OUT/gpu_graphs.json" ;;
    stacked) run "benchmarks/gpu.py --parts stacked" $(($(left) - 10)) \
        "$PY" benchmarks/gpu.py --parts stacked --out "$OUT/gpu_stacked.json" ;;
    *) echo "unknown part $part; valid: paper bench sweep smoke graphs stacked" | tee -a "$log"; exit 2 ;;
    esac
done

cp "$AKT_STORE"/results/paper/*.csv "$OUT"/ 2>/dev/null
echo "== done in $(($(date +%s) - t0))s; in $OUT: $(ls "$OUT" | tr '\n' ' ')" | tee -a "$log"
grep -E "^== |\[train\] .*: clean|rc=|Error|error|Traceback|images/s|bf16 - fp32|bit-for-bit" "$log" | tail -n 120
