#!/usr/bin/env python3
"""BitNet b1.58 against full precision at equal steps (issue 13's loss and size targets).

    python3 benchmarks/bitnet_bench.py [--shapes base,wide] [--seeds 1] [--steps 750] [--warmup N]
                                       [--out runs/bitnet] [--write-docs]

Data: the shared corpus as byte-level BPE with 2,000 tokens, whole books held out
(`--split-by-book`), so validation is on books never trained on. Per shape, three runs
with the same data order, steps, batch and schedule:
  fp32         the llama shape in full precision (llama-5m's learning rate, 1e-3)
  ternary      BitLinears from the first step (bitnet-5m's learning rate, 2e-3)
  16-to-1.58   full precision for the first half of the steps, then ternary (2e-3)
Shapes: base = bitnet-5m (6 layers, width 256, SwiGLU 768); wide = twice the width
(512, 8 heads, SwiGLU 1536). Reported: best validation loss, held-out bits per byte
(`slm eval`, first 200K validation tokens), the gap to fp32, and for the ternary runs
the size of their TQ2_0 GGUF export against the same model exported as F32.
Finished runs are skipped, so the script can be re-run to add seeds or shapes; each run
records its steps and warm-up, so shapes may be run with different budgets (the table
says which).
"""
import argparse
import json
import os
import statistics
import sys

from bench_runs import ROOT, sh, write_table

SHAPES = {"base": [], "wide": ["--set", "model.width=512", "--set", "model.heads=8", "--set", "model.kv_heads=8",
                               "--set", "model.ffn_width=1536"]}
RUNS = {
    "fp32": ["--preset", "llama-5m", "--set", "model.ffn_width=768"],
    "ternary": ["--preset", "bitnet-5m"],
    "16-to-1.58": ["--preset", "bitnet-5m", "--set", "training.full_precision_fraction=0.5"],
}


def best_val_loss(run):
    losses = [json.loads(l).get("val_loss") for l in open(os.path.join(run, "metrics.jsonl"))]
    return min(v for v in losses if v is not None)


def main():
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--slm", default=os.path.join(ROOT, ".build/release/slm"))
    a.add_argument("--corpus", default=os.path.join(ROOT, "../shared/corpus"))
    a.add_argument("--shapes", default="base,wide")
    a.add_argument("--seeds", default="1")
    a.add_argument("--steps", type=int, default=750)
    a.add_argument("--warmup", type=int, help="warm-up steps of every run (default: the presets' 200)")
    a.add_argument("--precision", default="fp32", help="matrix products of every run (fp32 compares across CPUs)")
    a.add_argument("--out", default=os.path.join(ROOT, "runs/bitnet"))
    a.add_argument("--write-docs", action="store_true")
    o = a.parse_args()
    shapes, seeds = o.shapes.split(","), [int(s) for s in o.seeds.split(",")]
    data = os.path.join(o.out, "data")
    os.makedirs(o.out, exist_ok=True)
    if not os.path.exists(os.path.join(data, "meta.json")):
        sh([o.slm, "data", "prepare", "--corpus", o.corpus, "--out", data, "--charset", "ascii", "--split-by-book"])
        sh([o.slm, "tokenizer", "train", "--input", os.path.join(data, "train.txt"), "--vocab-size", "2000",
            "--out", os.path.join(data, "tokenizer")])
        sh([o.slm, "data", "tokenize", "--data", data, "--tokenizer", os.path.join(data, "tokenizer")])

    results = {}
    for shape in shapes:
        for seed in seeds:
            for name, flags in RUNS.items():
                run = os.path.join(o.out, f"{shape}-{name}-seed{seed}")
                if not os.path.exists(os.path.join(run, ".finished")):
                    print(f"== {shape} {name}, seed {seed}", flush=True)
                    warmup = ["--set", f"training.warmup={o.warmup}"] if o.warmup is not None else []
                    sh([o.slm, "train", "--data", data, "--out", run, "--steps", str(o.steps), "--seed", str(seed),
                        "--precision", o.precision, "--sample", "0", "--eval-sample", "0"] + flags + SHAPES[shape]
                       + warmup, log=run + ".log")
                    held = json.loads(sh([o.slm, "eval", "--model", os.path.join(run, "best"), "--data", data, "--json",
                                          "--max-tokens", "200000"])[0])["evaluation"]
                    sizes = {}
                    if name != "fp32":
                        for t in ("tq2_0", "f32"):
                            path = os.path.join(run, f"model-{t}.gguf")
                            sh([o.slm, "export", "--model", os.path.join(run, "best"), "--format", "gguf", "--type", t,
                                "--out", path])
                            sizes[t] = os.path.getsize(path)
                            os.remove(path)
                    json.dump({"held": held, "sizes": sizes, "steps": o.steps, "warmup": o.warmup or 200},
                              open(os.path.join(run, "summary.json"), "w"))
                    open(os.path.join(run, ".finished"), "w").close()
                summary = json.load(open(os.path.join(run, "summary.json")))
                results[(shape, name, seed)] = (best_val_loss(run), summary["held"]["bits_per_byte"], summary["sizes"],
                                                summary.get("steps", 750), summary.get("warmup", 200))

    rows, budgets = [], []
    for shape in shapes:
        steps, warmup = results[(shape, "fp32", seeds[0])][3:]
        if any(results[(shape, n, s)][3:] != (steps, warmup) for n in RUNS for s in seeds):
            sys.exit(f"bitnet_bench: the {shape} runs differ in steps or warm-up; remove the odd ones and re-run")
        budgets.append(f"{shape}: {steps} steps, warm-up {warmup}")
        base = statistics.mean(results[(shape, "fp32", s)][0] for s in seeds)
        for name in RUNS:
            losses = [results[(shape, name, s)][0] for s in seeds]
            bits = [results[(shape, name, s)][1] for s in seeds]
            sizes = results[(shape, name, seeds[0])][2]
            ratio = f"{sizes['f32'] / sizes['tq2_0']:.1f}× ({sizes['tq2_0'] / 2**20:.1f} MiB)" if sizes else "—"
            gap = statistics.mean(losses) / base - 1
            rows.append(f"| {shape} | {name} | {statistics.mean(losses):.4f} | {statistics.mean(bits):.4f} | "
                        f"{'' if name == 'fp32' else f'{gap * 100:+.1f}%'} | {ratio} |")
    table = "\n".join([
        f"{'; '.join(budgets)}; 16 × 256 tokens per step, seeds {', '.join(map(str, seeds))}, "
        f"{o.precision} products; validation = held-out books.",
        "",
        "| shape | run | best validation loss | held-out bits/byte | loss vs fp32 | TQ2_0 export vs F32 |",
        "|---|---|---:|---:|---:|---|",
    ] + rows)
    print(table)
    if o.write_docs:
        write_table(table, "bitnet")


if __name__ == "__main__":
    main()
