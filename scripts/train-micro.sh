#!/usr/bin/env bash
# The main job: turn ../shared/corpus into character data, train the `micro` GPT-2 on it
# (a few minutes on two cores), and print a sample. Re-running skips finished steps;
# the run resumes from its last checkpoint if one exists.
#   CORPUS=path/to/corpus  DATA=runs/data-micro  OUT=runs/micro  scripts/train-micro.sh [extra slm train flags]
set -euo pipefail
cd "$(dirname "$0")/.."

CORPUS=${CORPUS:-../shared/corpus}
DATA=${DATA:-runs/data-micro}
OUT=${OUT:-runs/micro}

swift build -c release --product slm
SLM=.build/release/slm

if [ ! -f "$DATA/train.txt" ]; then
    "$SLM" data prepare --corpus "$CORPUS" --out "$DATA" --charset micro
fi
if [ ! -f "$DATA/meta.json" ]; then
    "$SLM" data tokenize --data "$DATA" --tokenizer char
fi
if [ -d "$OUT" ] && ls "$OUT"/ckpt-* >/dev/null 2>&1; then
    "$SLM" train --preset micro --data "$DATA" --out "$OUT" --resume "$OUT" "$@"
else
    "$SLM" train --preset micro --data "$DATA" --out "$OUT" "$@"
fi
