#!/usr/bin/env python3
"""Train the same model in swift-slm and in the PyTorch reference, one after the other on
the same machine, data, batch and thread count, and print the ratios.

    swift build -c release
    pip install torch safetensors
    python3 benchmarks/compare_pytorch.py --preset char-10m --data runs/data-micro [--steps 13] [--rounds 3] [--no-compile]

swift-slm: `slm bench train` (the real trainer) in fp32 and with bf16 products. PyTorch:
benchmarks/reference/reference.py train with the model config swift-slm used, in fp32 eager,
fp32 torch.compile and bf16 autocast (the last only on CPUs with native bf16, unless
--torch-bf16). Each run is its own process and reports the median step
time after 3 warm-up steps and its own peak RSS. With --rounds N the variants run N times,
interleaved (every variant once per round), and the table shows each variant's median and
range over the rounds; the ratios are ratios of medians.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

from bench_runs import sh

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=13)
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds of every variant (medians over them)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--slm", default=".build/release/slm")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile on CPU)")
    p.add_argument("--torch-bf16", action="store_true",
                   help="run PyTorch's bf16 autocast even on a CPU without native bf16 (skipped there by default)")
    p.add_argument("--json", help="also write every run's figures to this file")
    a = p.parse_args()
    try:
        import torch  # noqa: F401
        import safetensors  # noqa: F401
    except ImportError as e:
        sys.exit(f"the PyTorch reference needs torch and safetensors ({e}): pip install torch safetensors")

    tmp = tempfile.mkdtemp()
    config = f"{tmp}/config.json"

    def slm(precision):
        out, _ = sh([a.slm, "bench", "train", "--preset", a.preset, "--data", a.data, "--steps", str(a.steps),
                     "--threads", str(a.threads), "--precision", precision, "--json"])
        o = json.loads(out)
        return o, dict(ms=o["msPerStep"], tps=o["tokensPerSecond"], rss=o["peakRSSMiB"], mfu=o.get("mfu"))

    def torch_run(name, flags, batch):
        out = f"{tmp}/{name.replace(' ', '_')}.json"
        sh([sys.executable, f"{HERE}/reference/reference.py", "train", "--model-config", config, "--data", a.data,
            "--steps", str(a.steps), "--batch", str(batch), "--eval-interval", str(a.steps), "--eval-batches", "1",
            "--threads", str(a.threads), "--out", out, *flags])
        t = json.load(open(out))
        return dict(ms=t["ms_per_step"], tps=t["tokens_per_sec"], rss=t["peak_rss_mib"])

    # The CPU feature swift-slm itself calls native bf16 (`slm info`: "AVX-512 BF16").
    native_bf16 = "avx512_bf16" in open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else True
    theirs_variants = [("fp32 eager", ["--precision", "fp32"])]
    if native_bf16 or a.torch_bf16:
        theirs_variants.append(("bf16 autocast", ["--precision", "bf16"]))
    else:
        print("skipping PyTorch bf16 autocast: this CPU has no native bf16 dot product, where it is emulated and "
              "several times slower than fp32 (--torch-bf16 runs it anyway)", file=sys.stderr)
    if not a.no_compile:
        theirs_variants.insert(1, ("fp32 torch.compile", ["--precision", "fp32", "--compile"]))
    runs = {}  # name -> list of per-round results
    first = None  # swift-slm's first report: the model config and batch PyTorch trains with
    for r in range(a.rounds):
        for precision in ("fp32", "bf16"):
            report, o = slm(precision)
            runs.setdefault(f"swift-slm {precision}", []).append(o)
            if first is None:
                first = report
                json.dump(first["config"], open(config, "w"))
                batch = first["tokensPerStep"] // first["config"]["context"]
        for name, flags in theirs_variants:
            runs.setdefault(f"PyTorch {name}", []).append(torch_run(name, flags, batch))
        print(f"round {r + 1}/{a.rounds}: " + ", ".join(f"{n} {v[-1]['ms']:.0f} ms" for n, v in runs.items()),
              file=sys.stderr, flush=True)

    med = {n: {k: statistics.median(x[k] for x in v) for k in ("ms", "tps", "rss")} for n, v in runs.items()}
    print(f"\n{a.preset}: {first['parameters']:,} parameters, batch {batch} × {first['config']['context']}, "
          f"{a.threads} threads, median of {a.steps - 3} steps per run, {a.rounds} interleaved round(s)")
    print(f"{'':30}{'ms/step (median, range)':>26}{'tokens/s':>10}{'peak RSS MiB':>14}")
    for n, v in runs.items():
        ms = [x["ms"] for x in v]
        rng = f"{med[n]['ms']:.0f} ({min(ms):.0f}–{max(ms):.0f})" if len(ms) > 1 else f"{ms[0]:.0f}"
        print(f"{n:30}{rng:>26}{med[n]['tps']:10.0f}{med[n]['rss']:14.0f}")
    ours32 = med["swift-slm fp32"]
    theirs = {n: m for n, m in med.items() if n.startswith("PyTorch")}
    best32 = max((n for n in theirs if "fp32" in n), key=lambda n: theirs[n]["tps"])
    best = max(theirs, key=lambda n: theirs[n]["tps"])
    ours_best = max((n for n in med if n.startswith("swift-slm")), key=lambda n: med[n]["tps"])
    print(f"\nswift-slm fp32 / {best32}: {ours32['tps'] / theirs[best32]['tps']:.2f}× tokens/s, "
          f"peak RSS {ours32['rss'] / theirs[best32]['rss']:.2f}×")
    print(f"{ours_best} / PyTorch's best ({best}): {med[ours_best]['tps'] / theirs[best]['tps']:.2f}× tokens/s, "
          f"peak RSS {med[ours_best]['rss'] / theirs[best]['rss']:.2f}×")
    print("targets (issue 12): ≥ 1.5× PyTorch's best on AVX-512 CPUs, ≥ 1.1× on AVX2-only CPUs")
    mfu = [x["mfu"] for x in runs["swift-slm fp32"] if x["mfu"] is not None]
    if mfu:
        print(f"swift-slm fp32 MFU: {min(mfu) * 100:.0f}–{max(mfu) * 100:.0f}% of the measured fp32 peak")
    if a.json:
        json.dump(dict(preset=a.preset, rounds=a.rounds, steps=a.steps, runs=runs), open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
