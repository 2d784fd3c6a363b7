#!/usr/bin/env python3
"""Data-centric training methods against a seeded uniform baseline (issue 14).

    python3 benchmarks/data_methods.py [--preset micro] [--seeds 1,2,3] [--methods all]
                                       [--steps N] [--out runs/data-methods] [--jobs N --threads T]
                                       [--write-docs]

Every method trains the same model with the same schedule, hyper-parameters and number
of steps as the baseline; only the data it reads (and, for distillation, the objective)
changes. The data is the shared corpus prepared with whole books held out
(`--split-by-book`), so the validation loss and the held-out bits per character are on
books never trained on.

Per run: the best validation loss, the held-out bits per character (`slm eval` on the
first 200K validation tokens), and the steps, tokens and seconds it took to reach the
baseline's final validation loss of the same seed (linear between evaluations; "—" when
never reached). Helpers (the scorer and reference for coreset and DoReMi, the teacher
for distillation) are trained once, and their time is counted as each method's
overhead. Finished runs are skipped, so the script can be re-run to add seeds or methods.
With --write-docs the table replaces the one between the data-methods markers in
docs/BENCHMARKS.md.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import statistics

from bench_runs import ROOT, sh, write_table


PHASES = "logic+rhetoric@0, logic+rhetoric+quadrivium@0.25, all@0.5"
METHODS = {
    "baseline": [],
    "chunks": ["--set", 'training.sampler="chunks"'],
    "curriculum-difficulty": ["--set", 'training.curriculum="difficulty"'],
    "curriculum-compression": ["--set", 'training.curriculum="compression"'],
    "phases": ["--set", f'training.phases="{PHASES}"'],
    "seq-warmup": ["--set", "training.seq_warmup={warmup}", "--set", "training.seq_start=32"],
    "coreset": ["--set", "training.coreset.keep=0.5"],
    "doremi": ["--set", 'training.doremi.reference="{helper}/best"'],
    "distill": ["--teacher", "{teacher}/best"],
}
NEEDS = {"coreset": "scorer", "doremi": "scorer", "distill": "teacher"}


def records(run):
    return [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]


def curve(run):
    """(step, tokens, elapsed, val_loss) at every evaluation."""
    rs = records(run)
    tokens = {r["step"]: r["tokens"] for r in rs if "tokens" in r}
    return [(r["step"], tokens.get(r["step"]), r["elapsed"], r["val_loss"]) for r in rs if "val_loss" in r]


def reach(points, target):
    """Steps, tokens, seconds when the validation loss first reaches target (linear between evaluations)."""
    previous = (0, 0, 0.0, float("inf"))
    for p in points:
        if p[3] <= target:
            if previous[3] == float("inf"):
                return p[:3]
            f = (previous[3] - target) / (previous[3] - p[3])
            return tuple(a + f * (b - a) for a, b in zip(previous[:3], p[:3]))
        previous = p
    return None


def main():
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--slm", default=os.path.join(ROOT, ".build/release/slm"))
    a.add_argument("--corpus", default=os.path.join(ROOT, "../shared/corpus"))
    a.add_argument("--preset", default="micro")
    a.add_argument("--charset", default="micro")
    a.add_argument("--seeds", default="1,2,3")
    a.add_argument("--methods", default="all", help="comma-separated names, or all: " + ", ".join(METHODS))
    a.add_argument("--steps", type=int, help="steps per run (default: the preset's)")
    a.add_argument("--eval-interval", type=int, default=100)
    a.add_argument("--out", default=os.path.join(ROOT, "runs/data-methods"))
    a.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    a.add_argument("--threads", type=int, help="threads per run (default: slm's; with --jobs 2 on 2 cores, 1)")
    a.add_argument("--write-docs", action="store_true")
    o = a.parse_args()
    methods = list(METHODS) if o.methods == "all" else o.methods.split(",")
    if "baseline" not in methods:
        methods.insert(0, "baseline")
    seeds = [int(s) for s in o.seeds.split(",")]
    data = os.path.join(o.out, f"data-{o.charset}")
    os.makedirs(o.out, exist_ok=True)
    if not os.path.exists(os.path.join(data, "meta.json")):
        sh([o.slm, "data", "prepare", "--corpus", o.corpus, "--out", data, "--charset", o.charset, "--split-by-book"])
        sh([o.slm, "data", "tokenize", "--data", data, "--tokenizer", "char"])
    common = ["--preset", o.preset, "--data", data, "--eval-interval", str(o.eval_interval), "--sample", "0",
              "--eval-sample", "0", "--precision", "fp32", "--set", f"training.log_interval={o.eval_interval}"]
    if o.steps:
        common += ["--steps", str(o.steps)]
    steps = o.steps or 1500

    # Helpers, trained once: a scorer / reference (a quarter of the steps) and a teacher (twice the steps).
    helpers, overhead = {}, {}
    for name, factor in (("scorer", 0.25), ("teacher", 2.0)):
        if not any(NEEDS.get(m) == name for m in methods):
            continue
        run = os.path.join(o.out, name)
        if not os.path.exists(os.path.join(run, ".finished")):
            _, seconds = sh([o.slm, "train", "--out", run, "--seed", "100"] + common + ["--steps", str(int(steps * factor))])
            json.dump({"seconds": seconds}, open(os.path.join(run, ".finished"), "w"))
        helpers[name] = run
        overhead[name] = json.load(open(os.path.join(run, ".finished")))["seconds"]
    if "coreset" in methods:
        marker = os.path.join(data, ".scored")
        if not os.path.exists(marker):
            _, seconds = sh([o.slm, "data", "score", "--model", os.path.join(helpers["scorer"], "best"), "--data", data])
            json.dump({"seconds": seconds}, open(marker, "w"))
        overhead["scoring"] = json.load(open(marker))["seconds"]

    def train(m, seed):
        run = os.path.join(o.out, f"{m}-seed{seed}")
        if os.path.exists(os.path.join(run, ".finished")):
            return
        extra = [x.replace("{helper}", helpers.get("scorer", "")).replace("{teacher}", helpers.get("teacher", ""))
                 .replace("{warmup}", str(steps // 5)) for x in METHODS[m]]
        threads = ["--threads", str(o.threads)] if o.threads else []
        print(f"== {m}, seed {seed}", flush=True)
        shutil.rmtree(run, ignore_errors=True)  # an unfinished run starts over
        sh([o.slm, "train", "--out", run, "--seed", str(seed)] + common + extra + threads, log=run + ".log")
        out, _ = sh([o.slm, "eval", "--model", os.path.join(run, "best"), "--data", data, "--json", "--max-tokens", "200000"] + threads)
        json.dump(json.loads(out)["evaluation"], open(os.path.join(run, "heldout.json"), "w"))
        open(os.path.join(run, ".finished"), "w").close()

    # Runs are independent: --jobs N trains N at once (each with --threads T).
    with concurrent.futures.ThreadPoolExecutor(max_workers=o.jobs) as pool:
        for f in [pool.submit(train, m, seed) for seed in seeds for m in methods]:
            f.result()
    results = {}
    for seed in seeds:
        for m in methods:
            run = os.path.join(o.out, f"{m}-seed{seed}")
            held = json.load(open(os.path.join(run, "heldout.json")))
            results[(m, seed)] = (curve(run), held["bits_per_char"])

    rows = []
    for m in methods:
        finals, bits, ratios, seconds = [], [], [], []
        for seed in seeds:
            points, bpc = results[(m, seed)]
            base_points, _ = results[("baseline", seed)]
            target = base_points[-1][3]
            finals.append(min(p[3] for p in points))
            bits.append(bpc)
            hit = reach(points, target)
            base_hit = reach(base_points, target)
            ratios.append(None if hit is None else hit[1] / base_hit[1])
            seconds.append(None if hit is None else hit[2])
        extra = sum(overhead[h] for h in (NEEDS.get(m),) if h) + (overhead.get("scoring", 0) if m == "coreset" else 0)
        shown = [f"{r:.2f}" if r is not None else "—" for r in ratios]
        meets = all(r is not None and r <= 0.8 for r in ratios)
        rows.append(f"| {m} | {statistics.mean(finals):.4f} ({min(finals):.4f}–{max(finals):.4f}) | "
                    f"{statistics.mean(bits):.4f} | {' · '.join(shown)} | "
                    f"{' · '.join(f'{s:.0f}' if s is not None else '—' for s in seconds)} | "
                    f"{extra:.0f} s | {'yes' if meets and m != 'baseline' else 'no'} |")
    table = "\n".join([
        f"`{o.preset}`, {steps} steps, seeds {', '.join(map(str, seeds))}; validation = held-out books; "
        f"{o.jobs} run(s) at a time, {o.threads or 'default'} thread(s) each.",
        "",
        "| method | best validation loss, mean (range) | held-out bits/char | tokens to the baseline's final loss, × baseline, per seed | seconds to it, per seed | overhead | ≤ 0.8× on every seed |",
        "|---|---|---:|---|---|---:|---|",
    ] + rows)
    print(table)
    if o.write_docs:
        write_table(table, "data-methods" if o.preset == "micro" else f"data-methods-{o.preset}")


if __name__ == "__main__":
    main()
