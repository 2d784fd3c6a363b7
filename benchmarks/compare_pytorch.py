#!/usr/bin/env python3
"""Train the same model in swift-slm and in the PyTorch reference, one after the other on
the same machine, data, batch and thread count, and print the ratios.

    swift build -c release
    python3 benchmarks/compare_pytorch.py --preset char-10m --data runs/data-micro [--steps 13] [--no-compile]

swift-slm: `slm bench train` (the real trainer; fp32). PyTorch: benchmarks/reference/reference.py
train with the model config swift-slm used, in fp32 eager, fp32 torch.compile and bf16 autocast.
Each side reports the median step time after 3 warm-up steps and its own peak RSS.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=13)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--slm", default=".build/release/slm")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile on CPU)")
    a = p.parse_args()

    ours = json.loads(run([a.slm, "bench", "train", "--preset", a.preset, "--data", a.data, "--steps", str(a.steps),
                           "--threads", str(a.threads), "--json"]))
    tmp = tempfile.mkdtemp()
    config = f"{tmp}/config.json"
    json.dump(ours["config"], open(config, "w"))
    batch = ours["tokensPerStep"] // ours["config"]["context"]
    variants = [("fp32 eager", ["--precision", "fp32"]), ("bf16 autocast", ["--precision", "bf16"])]
    if not a.no_compile:
        variants.insert(1, ("fp32 torch.compile", ["--precision", "fp32", "--compile"]))
    theirs = {}
    for name, flags in variants:
        out = f"{tmp}/{name.replace(' ', '_')}.json"
        run([sys.executable, f"{HERE}/reference/reference.py", "train", "--model-config", config, "--data", a.data,
             "--steps", str(a.steps), "--batch", str(batch), "--eval-interval", str(a.steps), "--eval-batches", "1",
             "--threads", str(a.threads), "--out", out, *flags])
        theirs[name] = json.load(open(out))

    print(f"\n{a.preset}: {ours['parameters']:,} parameters, batch {batch} × {ours['config']['context']}, {a.threads} threads, "
          f"median of {a.steps - 3} steps")
    print(f"{'':28}{'ms/step':>10}{'tokens/s':>11}{'peak RSS MiB':>14}")
    print(f"{'swift-slm fp32':28}{ours['msPerStep']:10.0f}{ours['tokensPerSecond']:11.0f}{ours['peakRSSMiB']:14.0f}")
    for name, t in theirs.items():
        print(f"{'PyTorch ' + name:28}{t['ms_per_step']:10.0f}{t['tokens_per_sec']:11.0f}{t['peak_rss_mib']:14.0f}")
    fp32 = [t for n, t in theirs.items() if n.startswith("fp32")]
    best32 = max(fp32, key=lambda t: t["tokens_per_sec"])
    best = max(theirs.values(), key=lambda t: t["tokens_per_sec"])
    print(f"\nswift-slm fp32 / PyTorch's best fp32: {ours['tokensPerSecond'] / best32['tokens_per_sec']:.2f}× tokens/s "
          f"(target 1.5×), peak RSS {ours['peakRSSMiB'] / best32['peak_rss_mib']:.2f}×")
    print(f"swift-slm best / PyTorch's best overall ({best['precision']}{' compiled' if best['compile'] else ''}): "
          f"{ours['tokensPerSecond'] / best['tokens_per_sec']:.2f}× tokens/s (target 1.2×)")


if __name__ == "__main__":
    main()
