#!/usr/bin/env python3
"""Training at long context: tokens/s and peak RSS of a llama-5m-shaped model at several
contexts with the same tokens per step (batch = tokens / context), swift-slm beside
PyTorch (the reference model, whose attention is F.scaled_dot_product_attention).

    swift build -c release
    python3 benchmarks/long_context.py --data runs/data-micro [--contexts 256,1024,4096] [--repeats 3] [--write-docs]

Each measurement is its own process: `slm bench train` (the real trainer, median step
time after its warm-up) and benchmarks/reference/reference.py train (median after 3 steps),
interleaved, repeated; the table shows medians over the repeats and each side's peak RSS
(the largest over the repeats). Our attention keeps one 32-query block's scores at a time
(memory linear in T); the check is that context 4,096 needs under 2× the memory of 1,024.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

from bench_runs import ROOT, sh, write_table


def main():
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--data", required=True, help="a tokenized data folder (its vocabulary sets the model's)")
    a.add_argument("--preset", default="llama-5m")
    a.add_argument("--contexts", default="256,1024,4096")
    a.add_argument("--tokens", type=int, default=4096, help="tokens per step at every context")
    a.add_argument("--steps", type=int, default=8, help="steps per run, the first 3 untimed")
    a.add_argument("--repeats", type=int, default=3)
    a.add_argument("--threads", type=int, default=os.cpu_count())
    a.add_argument("--slm", default=os.path.join(ROOT, ".build/release/slm"))
    a.add_argument("--write-docs", action="store_true")
    o = a.parse_args()
    contexts = [int(c) for c in o.contexts.split(",")]
    if any(o.tokens % t for t in contexts):
        sys.exit(f"--tokens {o.tokens} must be a multiple of every context")
    if o.steps <= 3:
        sys.exit("--steps must exceed the 3 untimed steps")
    ours, theirs = {t: [] for t in contexts}, {t: [] for t in contexts}
    with tempfile.TemporaryDirectory() as tmp:  # the configs and PyTorch's results
        for r in range(o.repeats):
            for t in contexts:
                batch = o.tokens // t
                out, _ = sh([o.slm, "bench", "train", "--preset", o.preset, "--data", o.data, "--steps", str(o.steps),
                             "--warmup", "3", "--threads", str(o.threads), "--precision", "fp32", "--json",
                             "--set", f"model.context={t}", "--set", f"training.batch={batch}"])
                mine = json.loads(out)
                ours[t].append((mine["tokensPerSecond"], mine["peakRSSMiB"]))
                config = os.path.join(tmp, f"config-{t}.json")
                json.dump(mine["config"], open(config, "w"))
                result = os.path.join(tmp, f"torch-{t}.json")
                sh([sys.executable, os.path.join(ROOT, "benchmarks/reference/reference.py"), "train", "--model-config", config,
                    "--data", o.data, "--steps", str(o.steps), "--batch", str(batch), "--eval-interval", str(o.steps),
                    "--eval-batches", "1", "--threads", str(o.threads), "--precision", "fp32", "--out", result])
                ref = json.load(open(result))
                theirs[t].append((ref["tokens_per_sec"], ref["peak_rss_mib"]))
                print(f"repeat {r + 1}, context {t}: swift-slm {mine['tokensPerSecond']:.0f} tokens/s, {mine['peakRSSMiB']:.0f} MiB; "
                      f"PyTorch {ref['tokens_per_sec']:.0f} tokens/s, {ref['peak_rss_mib']:.0f} MiB", flush=True)

    def med(runs):
        return statistics.median(x[0] for x in runs), max(x[1] for x in runs)

    rows = []
    for t in contexts:
        (mr, mm), (tr, tm) = med(ours[t]), med(theirs[t])
        rows.append(f"| {t:,} | {o.tokens // t} | {mr:,.0f} | {tr:,.0f} | {mr / tr:.2f}× | {mm:,.0f} | {tm:,.0f} |")
    base = 1024 if 1024 in contexts else contexts[0]
    ratios = [f"{t:,}: {med(ours[t])[1] / med(ours[base])[1]:.2f}× (PyTorch {med(theirs[t])[1] / med(theirs[base])[1]:.2f}×)"
              for t in contexts if t != base]
    table = "\n".join([
        f"`{o.preset}` shape, fp32, {o.tokens:,} tokens per step, {o.threads} threads; medians of {o.repeats} interleaved runs "
        f"of {o.steps} steps (3 untimed); peak RSS is the largest over the runs.",
        "",
        "| context | batch | swift-slm tokens/s | PyTorch SDPA tokens/s | ratio | swift-slm peak RSS, MiB | PyTorch peak RSS, MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ] + rows + (["", f"Peak RSS against context {base:,}: " + "; ".join(ratios) + "."] if ratios else []))
    print(table)
    if o.write_docs:
        write_table(table, "long-context")


if __name__ == "__main__":
    main()
