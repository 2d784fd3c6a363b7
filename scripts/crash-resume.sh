#!/usr/bin/env bash
# Crash test of training: kill -9 a run at random moments (KILLS times, default 50), each
# time resuming it from its last complete checkpoint, then let it finish; its final
# weights must equal, byte for byte, those of the same run done in one go.
#   KILLS=50 STEPS=120 scripts/crash-resume.sh        (prints "crash-resume: N passed, M failed")
# A small GPT-2 on the corpus's micro-charset text, a checkpoint every 2 steps, 2 threads
# (bit-exact resume needs the same thread count). Bounded: at most KILLS + STEPS/2 + 2
# starts, each killed or finished; it stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

KILLS=${KILLS:-50}
STEPS=${STEPS:-120}
CORPUS=${CORPUS:-../shared/corpus}
WORK=${WORK:-$(mktemp -d)}
SLM=${SLM:-}
if [ -z "$SLM" ]; then
    swift build -c release --product slm
    SLM=.build/release/slm
fi
DATA="$WORK/data"
if [ ! -f "$DATA/meta.json" ]; then
    "$SLM" data prepare --corpus "$CORPUS" --out "$DATA" --charset micro > /dev/null
    "$SLM" data tokenize --data "$DATA" --tokenizer char > /dev/null
fi
args=(train --preset micro --data "$DATA" --steps "$STEPS" --eval-interval 2 --sample 0 --threads 2
      --set model.layers=2 --set model.width=64 --set training.eval_batches=1 --set training.keep_last=2)
final=$(printf "ckpt-%06d" "$STEPS")

rm -rf "$WORK/reference" "$WORK/crashed" "$WORK/crashed.log"
"$SLM" "${args[@]}" --out "$WORK/reference" > "$WORK/reference.log" 2>&1
kills=0 starts=0
while [ ! -f "$WORK/crashed/$final/trainer_state.json" ]; do
    starts=$((starts + 1))
    if [ "$starts" -gt $((KILLS + STEPS / 2 + 2)) ]; then echo "crash-resume: too many starts"; break; fi
    if ls "$WORK/crashed"/ckpt-* > /dev/null 2>&1; then resume=(--resume "$WORK/crashed"); else resume=(); fi
    if pgrep -f -- "--out $WORK/crashed" > /dev/null; then echo "crash-resume: a killed run is still alive"; exit 1; fi
    # The slm process itself in the background (not a subshell), so kill -9 hits it.
    "$SLM" "${args[@]}" --out "$WORK/crashed" "${resume[@]}" >> "$WORK/crashed.log" 2>&1 &
    pid=$!
    if [ "$kills" -lt "$KILLS" ]; then
        # Somewhere in start-up, a step or a checkpoint write: 0.3 to 2.3 s.
        sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.3 + 2 * r / 32768 }')"
        if kill -9 "$pid" 2> /dev/null; then kills=$((kills + 1)); fi
        wait "$pid" 2> /dev/null || true
    else
        wait "$pid"
    fi
done
passed=0 failed=0
for file in model.safetensors optimizer.safetensors; do
    if cmp -s "$WORK/reference/$final/$file" "$WORK/crashed/$final/$file"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "crash-resume: $file differs from the uninterrupted run's"
    fi
done
echo "crash-resume: $kills kills over $starts starts; final checkpoint $final; work in $WORK"
echo "crash-resume: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
