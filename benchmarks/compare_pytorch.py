#!/usr/bin/env python3
"""Train the same model in swift-slm and in the PyTorch reference, one after the other on
the same machine, data, batch and thread count, and print the ratios.

    swift build -c release
    python3 benchmarks/compare_pytorch.py --preset char-10m --data runs/data-micro [--steps 13] [--no-compile]

swift-slm: `slm bench train` (the real trainer) in fp32 and with bf16 products. PyTorch:
benchmarks/reference/reference.py train with the model config swift-slm used, in fp32 eager,
fp32 torch.compile and bf16 autocast. Each run is its own process and reports the median step
time after 3 warm-up steps and its own peak RSS.
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

    def slm(precision):
        return json.loads(run([a.slm, "bench", "train", "--preset", a.preset, "--data", a.data, "--steps", str(a.steps),
                               "--threads", str(a.threads), "--precision", precision, "--json"]))

    mine = {"fp32": slm("fp32"), "bf16": slm("bf16")}
    ours = mine["fp32"]
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
    for name, o in mine.items():
        print(f"{'swift-slm ' + name:28}{o['msPerStep']:10.0f}{o['tokensPerSecond']:11.0f}{o['peakRSSMiB']:14.0f}")
    for name, t in theirs.items():
        print(f"{'PyTorch ' + name:28}{t['ms_per_step']:10.0f}{t['tokens_per_sec']:11.0f}{t['peak_rss_mib']:14.0f}")
    fp32 = [t for n, t in theirs.items() if n.startswith("fp32")]
    best32 = max(fp32, key=lambda t: t["tokens_per_sec"])
    best = max(theirs.values(), key=lambda t: t["tokens_per_sec"])
    our_best = max(mine.values(), key=lambda o: o["tokensPerSecond"])
    print(f"\nswift-slm fp32 / PyTorch's best fp32: {ours['tokensPerSecond'] / best32['tokens_per_sec']:.2f}× tokens/s "
          f"(target 1.5×), peak RSS {ours['peakRSSMiB'] / best32['peak_rss_mib']:.2f}×")
    print(f"swift-slm best ({our_best['precision']}) / PyTorch's best ({best['precision']}"
          f"{' compiled' if best['compile'] else ''}): {our_best['tokensPerSecond'] / best['tokens_per_sec']:.2f}× tokens/s "
          f"(target 1.2×), peak RSS {our_best['peakRSSMiB'] / best['peak_rss_mib']:.2f}×")


if __name__ == "__main__":
    main()
