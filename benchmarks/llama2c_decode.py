#!/usr/bin/env python3
"""Batch-1 decoding beside llama2.c's run.c, on the same shapes, in the same script.

    swift build -c release
    python3 benchmarks/llama2c_decode.py --llama2c DIR [--rounds 5] [--threads 2] [--write-docs]

DIR is a checkout of github.com/karpathy/llama2.c (its run.c and tokenizer.bin; nothing
of it is kept here). run.c is built as its README advises for speed, with
`cc -Ofast -march=native -fopenmp`, and runs with OMP_NUM_THREADS = --threads.

Shapes, random weights on both sides (speed does not depend on the values):
- stories15M: llama2.c's TinyStories shape (benchmarks/configs/stories15M.toml), with
  llama2.c's own 32,000-token tokenizer.bin;
- char10m-llama: char-10m's shape as a LLaMA (benchmarks/configs/char10m-llama.toml),
  96 tokens, with a tokenizer.bin of 96 one-byte pieces written here.
run.c reads a model file in its format written here (header, then the weights in its
order; token 1's embedding row is zero, so that its logit is 0 and greedy decoding
never picks run.c's stop token). Both sides decode greedily from a one-token prompt;
each reports tokens/s after the first token. Rounds interleave the two; the table shows
medians (and ranges), the ratio of medians, and the share of the measured memory
bandwidth each speed implies (weight bytes per token × tokens/s, with the bytes and the
bandwidth that `slm bench generate` reports).
"""
import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile

import numpy as np

from bench_runs import ROOT, sh, write_table

SHAPES = {
    "stories15M": dict(config="benchmarks/configs/stories15M.toml", dim=288, hidden=768, layers=6, heads=6,
                       kv_heads=6, vocab=32000, seq=256),
    "char10m-llama": dict(config="benchmarks/configs/char10m-llama.toml", dim=384, hidden=1024, layers=6, heads=6,
                          kv_heads=6, vocab=96, seq=256),
}


def write_model(path, s, seed):
    """A llama2.c model file (its legacy format: 7 int32s, then fp32 weights, classifier
    shared with the embedding, as a positive vocab size says)."""
    rng = np.random.default_rng(seed)
    d, h, L, hs = s["dim"], s["hidden"], s["layers"], s["dim"] // s["heads"]
    kv = s["kv_heads"] * hs

    def w(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    embedding = w(s["vocab"], d)
    embedding[1] = 0
    with open(path, "wb") as f:
        f.write(struct.pack("7i", d, h, L, s["heads"], s["kv_heads"], s["vocab"], s["seq"]))
        for block in (embedding, np.ones((L, d), np.float32), w(L, d, d), w(L, kv, d), w(L, kv, d), w(L, d, d),
                      np.ones((L, d), np.float32), w(L, h, d), w(L, d, h), w(L, h, d), np.ones(d, np.float32),
                      np.zeros(s["seq"] * hs, np.float32)):  # the rope tables the old format stored
            f.write(block.tobytes())


def write_byte_tokenizer(path, vocab):
    """run.c's tokenizer.bin for `vocab` one-byte pieces: max length, then score, length, bytes."""
    with open(path, "wb") as f:
        f.write(struct.pack("i", 1))
        for i in range(vocab):
            f.write(struct.pack("fi", 0.0, 1) + bytes([32 + i % 95]))


def run_c(binary, model, tokenizer, tokens, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run([binary, model, "-z", tokenizer, "-t", "0", "-n", str(tokens + 1), "-i", ""],
                       capture_output=True, text=True, env=env)
    m = re.search(r"achieved tok/s: ([0-9.]+)", p.stderr)
    if p.returncode != 0 or not m:
        sys.exit(f"FAIL: run.c\n{p.stdout[-500:]}\n{p.stderr[-1000:]}")
    return float(m.group(1))


def ours(slm, s, tokens, threads):
    # run.c keeps an fp32 cache: so does ours here, for the same work.
    out, _ = sh([slm, "bench", "generate", "--config", os.path.join(ROOT, s["config"]), "--vocab-size", str(s["vocab"]),
                 "--cache-only", "--prompt", "1", "--tokens", str(tokens), "--repeats", "3", "--threads", str(threads),
                 "--kv-cache", "fp32", "--json"])
    return json.loads(out)


def main():
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--llama2c", required=True, help="a checkout of karpathy/llama2.c (run.c, tokenizer.bin)")
    a.add_argument("--shapes", default=",".join(SHAPES))
    a.add_argument("--rounds", type=int, default=5)
    a.add_argument("--tokens", type=int, default=200)
    a.add_argument("--threads", type=int, default=os.cpu_count())
    a.add_argument("--slm", default=os.path.join(ROOT, ".build/release/slm"))
    a.add_argument("--cc", default="cc")
    a.add_argument("--write-docs", action="store_true")
    o = a.parse_args()
    source = os.path.join(o.llama2c, "run.c")
    if not os.path.exists(source):
        sys.exit(f"no run.c in {o.llama2c}: give a checkout of github.com/karpathy/llama2.c")
    shapes = o.shapes.split(",")
    unknown = [x for x in shapes if x not in SHAPES]
    if unknown:
        sys.exit(f"unknown shape {unknown[0]}; known: {', '.join(SHAPES)}")
    if o.tokens + 1 > 256:
        sys.exit("--tokens must be at most 255 (the shapes' context is 256)")

    with tempfile.TemporaryDirectory(prefix="slm-llama2c-") as work:
        binary = os.path.join(work, "run")
        sh([o.cc, "-Ofast", "-march=native", "-fopenmp", "-o", binary, source, "-lm"])
        files = {}
        for name in shapes:
            s = SHAPES[name]
            model = os.path.join(work, f"{name}.bin")
            write_model(model, s, seed=1)
            if s["vocab"] == 32000:
                tokenizer = os.path.join(o.llama2c, "tokenizer.bin")
                if not os.path.exists(tokenizer):
                    sys.exit(f"no tokenizer.bin in {o.llama2c}")
            else:
                tokenizer = os.path.join(work, f"{name}-tokenizer.bin")
                write_byte_tokenizer(tokenizer, s["vocab"])
            files[name] = (model, tokenizer)

        rows = []
        for name in shapes:
            s = SHAPES[name]
            mine, theirs, last = [], [], None
            for r in range(o.rounds):
                last = ours(o.slm, s, o.tokens, o.threads)
                mine.append(last["tokensPerSecond"])
                theirs.append(run_c(binary, *files[name], o.tokens, o.threads))
                print(f"{name} round {r + 1}: swift-slm {mine[-1]:.0f} tokens/s, run.c {theirs[-1]:.0f}", flush=True)
            bytes_per_token, bandwidth = last.get("weightBytesPerToken"), last.get("bandwidthGBs")
            m, t = statistics.median(mine), statistics.median(theirs)

            def share(rate):
                return f"{bytes_per_token * rate / 1e9 / bandwidth:.0%}" if bytes_per_token and bandwidth else "n/a"

            rows.append(f"| {name} | {bytes_per_token / 1e6:.1f} MB | {m:,.0f} ({min(mine):,.0f}–{max(mine):,.0f}) | "
                        f"{t:,.0f} ({min(theirs):,.0f}–{max(theirs):,.0f}) | {m / t:.2f}× | {share(m)} / {share(t)} |")
        table = "\n".join([
            f"`python3 benchmarks/llama2c_decode.py --llama2c DIR --rounds {o.rounds}` ({o.threads} threads, greedy, "
            f"{o.tokens} tokens after a one-token prompt, fp32, random weights; medians of {o.rounds} interleaved rounds, "
            "range in brackets; bandwidth measured by `slm bench generate`: "
            f"{bandwidth:.1f} GB/s in the last round):" if bandwidth else "",
            "",
            "| shape | weights per token | swift-slm tokens/s | run.c tokens/s | ratio | share of bandwidth, ours / run.c |",
            "|---|---|---|---|---|---|",
            *rows,
        ])
        print(table)
        if o.write_docs:
            write_table(table, "llama2c")


if __name__ == "__main__":
    main()
