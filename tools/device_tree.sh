#!/bin/bash
# Keep a GPU call's working tree under its 64 MiB: the device tool copies the working tree, and the
# published weights (data/weights, up to 90 MiB) plus a CIFAR pack (~56 MiB) would not fit together.
#   tools/device_tree.sh stash     # before the device call: moves data/weights out of the tree
#   tools/device_tree.sh restore   # after it: puts them back (git status is clean again)
#   tools/device_tree.sh size      # what the call would carry (tracked + untracked, not ignored)
# A GPU run reads no published weights: it trains what its store lacks and brings models back under
# $OUT, which `akt publish` then adds to data/weights here.
set -euo pipefail
cd "$(dirname "$0")/.."
STASH=${AKT_WEIGHTS_STASH:-../.weights-stash}
case "${1:-}" in
  stash)
    [ -d data/weights ] || { echo "no data/weights to stash"; exit 0; }
    [ ! -e "$STASH" ] || { echo "$STASH exists: restore it first" >&2; exit 2; }
    mv data/weights "$STASH" && echo "data/weights -> $STASH" ;;
  restore)
    [ -d "$STASH" ] || { echo "nothing stashed at $STASH"; exit 0; }
    [ ! -e data/weights ] || { echo "data/weights exists: not overwriting it" >&2; exit 2; }
    mv "$STASH" data/weights && echo "$STASH -> data/weights" ;;
  size)
    { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r du -cb 2>/dev/null | tail -1 ;;
  *) echo "usage: $0 stash|restore|size" >&2; exit 2 ;;
esac
