#!/usr/bin/env bash
# The lineage's head-to-head: the same BPE-2,000 data of the corpus, the same number of
# training tokens per run (STEPS × batch 16 × context 256; 750 steps ≈ 3.07M tokens),
# one run per preset and seed; then one `slm compare` table over the best checkpoints.
# Finished runs are skipped, so the script can be re-run to add seeds or presets.
#   PRESETS="llama-5m monarch-5m symbio-4m llama-moe" SEEDS="1 2" STEPS=750 \
#   DATA=runs/bpe-data OUT=runs/h2h scripts/head-to-head.sh
# With BUDGET=20m every run trains for that wall-clock time instead (STEPS is then the
# schedule's length); run it on a quiet machine, since the result is a speed comparison.
# TOGETHER=1 runs the presets of a seed at once, one thread each, so that every run has
# the same share of the machine for the same time (how docs/BENCHMARKS.md's equal
# wall-clock runs were made); STEPS_FOR="llama-5m=390 monarch-5m=425 …" then sizes each
# schedule to what the preset reaches in BUDGET, with a quarter of it as warm-up.
# SLM=path uses that binary instead of building one. PRECISION (default fp32, so that runs
# on CPUs with and without native bf16 compare) is passed to every run.
set -euo pipefail
cd "$(dirname "$0")/.."

CORPUS=${CORPUS:-../shared/corpus}
DATA=${DATA:-runs/bpe-data}
OUT=${OUT:-runs/h2h}
PRESETS=${PRESETS:-llama-5m monarch-5m symbio-4m llama-moe}
SEEDS=${SEEDS:-1 2}
STEPS=${STEPS:-750}
BUDGET=${BUDGET:-}
PRECISION=${PRECISION:-fp32}

if [ -z "${SLM:-}" ]; then
    swift build -c release --product slm
    SLM=.build/release/slm
fi

if [ ! -f "$DATA/meta.json" ]; then
    "$SLM" data prepare --corpus "$CORPUS" --out "$DATA" --charset ascii
    "$SLM" tokenizer train --input "$DATA/train.txt" --vocab-size 2000 --out "$DATA/tokenizer"
    "$SLM" data tokenize --data "$DATA" --tokenizer "$DATA/tokenizer"
fi

TOGETHER=${TOGETHER:-}
STEPS_FOR=${STEPS_FOR:-}

train() {  # preset seed run
    local steps=$STEPS extra=()
    for pair in $STEPS_FOR; do
        if [ "${pair%%=*}" = "$1" ]; then steps=${pair#*=}; extra=(--set "training.warmup=$(((steps + 2) / 4))"); fi
    done
    "$SLM" train --preset "$1" --data "$DATA" --out "$3" --steps "$steps" --seed "$2" --precision "$PRECISION" \
        --eval-interval $([ -n "$TOGETHER" ] && echo 100 || echo 250) --sample 0 ${BUDGET:+--time "$BUDGET"} ${extra[@]+"${extra[@]}"}
    touch "$3/.finished"
}

mkdir -p "$OUT"
runs=()
for seed in $SEEDS; do
    for preset in $PRESETS; do
        run="$OUT/$preset-seed$seed${BUDGET:+-$BUDGET}"
        runs+=("$run/best")
        if [ -f "$run/best/config.json" ] && [ -f "$run/.finished" ]; then continue; fi
        rm -rf "$run"
        echo "== $preset, seed $seed"
        if [ -n "$TOGETHER" ]; then
            SLM_NUM_THREADS=1 train "$preset" "$seed" "$run" > "$run.log" 2>&1 &
        else
            train "$preset" "$seed" "$run"
        fi
    done
    wait
done
"$SLM" compare "${runs[@]}" --data "$DATA"
