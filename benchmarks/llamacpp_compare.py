#!/usr/bin/env python3
"""Runs a model exported by `slm export --format gguf` in llama.cpp (through llama-cpp-python)
and compares it with swift-slm on the same checkpoint:

- tokenization: llama.cpp's ids for held-out text equal ours;
- logits on held-out windows (teacher-forced): largest difference and top-1 agreement,
  for f32 and q8_0 (llama.cpp also quantises activations to 8 bits in Q8_0 products),
  and tq2_0 for a model trained ternary (`--types tq2_0`; ours: BitLinear's per-token
  int8 activations, llama.cpp's: int8 per block of 256);
- greedy continuation of a prompt: llama.cpp's tokens against ours, token for token
  (ours: the argmax of `slm score` logits along llama.cpp's sequence, and the text of
  `slm generate --temperature 0`);
- decode speed, batch 1, greedy: llama.cpp against `slm bench generate` (fp32 beside f32,
  `--weights int8` beside q8_0, `--weights ternary` beside tq2_0), interleaved rounds.

llama-cpp-python builds llama.cpp from its PyPI source (several minutes); keep the wheel:
    pip wheel --no-deps -w ~/.cache/slm-wheels llama-cpp-python && pip install ~/.cache/slm-wheels/llama_cpp_python-*.whl

    python3 benchmarks/llamacpp_compare.py --model CHECKPOINT --text data/val.txt [--slm .build/release/slm]
                                           [--types f32,q8_0 | --types tq2_0]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    from llama_cpp import Llama
except ImportError:
    sys.exit("llamacpp_compare: llama-cpp-python is not installed (see this script's docstring)")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def our_ids(slm, model, text):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    try:
        return json.loads(run([slm, "tokenizer", "encode", "--tokenizer", model, "--input", f.name, "--json"]))["ids"]
    finally:
        os.unlink(f.name)


def our_logits(slm, model, rows, vocab, threads):
    """Logits [rows, time, vocab] of `slm score` for equal-length rows of ids."""
    with tempfile.TemporaryDirectory() as d:
        batch = Path(d) / "batch.json"
        batch.write_text(json.dumps({"inputs": rows, "targets": [r[1:] + [0] for r in rows]}))
        out = Path(d) / "logits.bin"
        run([slm, "score", "--model", model, "--batch", str(batch), "--logits", str(out), "--threads", str(threads)])
        return np.fromfile(out, dtype=np.float32).reshape(len(rows), len(rows[0]), vocab)


def their_logits(llm, row):
    llm.reset()
    llm.eval(row)
    return np.array(llm.scores[:len(row)], dtype=np.float32)


def their_greedy(llm, prompt, n):
    llm.reset()
    llm.eval(prompt)
    out = []
    for _ in range(n):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(nxt)
        llm.eval([nxt])
    return out


def their_speed(llm, prompt, n):
    llm.reset()
    llm.eval(prompt)
    start = time.perf_counter()
    for _ in range(n):
        llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])
    return n / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint folder (llama architecture, byte-level BPE)")
    ap.add_argument("--text", required=True, help="held-out text")
    ap.add_argument("--slm", default=".build/release/slm")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--windows", type=int, default=4, help="held-out windows of a full context")
    ap.add_argument("--prompt", default="The soul is")
    ap.add_argument("--tokens", type=int, default=64, help="greedy tokens to compare")
    ap.add_argument("--speed-tokens", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--types", default="f32,q8_0", help="GGUF types to export and compare (tq2_0: ternary models)")
    args = ap.parse_args()
    config = json.loads((Path(args.model) / "config.json").read_text())
    context, vocab = config["context"], config["vocab_size"]
    text = Path(args.text).read_text()[:200_000]
    ids = our_ids(args.slm, args.model, text)
    rows = [ids[i * context:(i + 1) * context] for i in range(args.windows)]
    assert all(len(r) == context for r in rows), "not enough held-out text"
    ours = our_logits(args.slm, args.model, rows, vocab, args.threads)
    prompt = our_ids(args.slm, args.model, args.prompt)
    assert len(prompt) + max(args.tokens, args.speed_tokens) <= context, "prompt + tokens must fit the context"
    results = {"model": args.model, "threads": args.threads, "positions": args.windows * context}

    with tempfile.TemporaryDirectory() as d:
        for kind in args.types.split(","):
            path = str(Path(d) / f"model-{kind}.gguf")
            run([args.slm, "export", "--model", args.model, "--format", "gguf", "--type", kind, "--out", path])
            llm = Llama(model_path=path, n_ctx=context, n_batch=context, logits_all=True, n_threads=args.threads,
                        n_threads_batch=args.threads, verbose=False)
            r = {"size_mib": round(os.path.getsize(path) / 2**20, 2)}
            sample = text[:4000]
            r["tokenization_equal"] = llm.tokenize(sample.encode(), add_bos=False, special=False) == our_ids(args.slm, args.model, sample)
            theirs = np.stack([their_logits(llm, row) for row in rows])
            r["max_abs_logit_diff"] = float(np.max(np.abs(theirs - ours)))
            r["mean_abs_logit_diff"] = float(np.mean(np.abs(theirs - ours)))
            r["top1_agreement"] = float(np.mean(np.argmax(theirs, -1) == np.argmax(ours, -1)))
            greedy = their_greedy(llm, prompt, args.tokens)
            seq = prompt + greedy
            teacher = our_logits(args.slm, args.model, [seq], vocab, args.threads)[0]
            our_next = [int(np.argmax(teacher[len(prompt) - 1 + i])) for i in range(args.tokens)]
            r["greedy_tokens_equal"] = sum(a == b for a, b in zip(our_next, greedy))
            r["greedy_tokens"] = args.tokens
            weights = {"f32": "fp32", "f16": "fp32", "q8_0": "int8", "tq2_0": "ternary"}[kind]
            if kind in ("f32", "tq2_0"):
                # `slm generate` stops at the end-of-text token and prints the continuation only.
                eos = llm.token_eos()
                until_eos = greedy[:greedy.index(eos)] if eos in greedy else greedy
                their_text = llm.detokenize(until_eos).decode("utf-8", errors="replace")
                ours_text = run([args.slm, "generate", "--model", args.model, "--prompt", args.prompt,
                                 "--temperature", "0", "--max-tokens", str(args.tokens), "--threads", str(args.threads),
                                 "--weights", weights])
                ours_text = ours_text.rstrip("\n")
                r["greedy_text_equal"] = ours_text == their_text
                r["greedy_text"] = their_text[:200]
                if ours_text != their_text:
                    # Where the two texts part, and by how much our own forward pass preferred
                    # llama.cpp's token there (a near-tie flips on summation order).
                    a = our_ids(args.slm, args.model, args.prompt + their_text)
                    b = our_ids(args.slm, args.model, args.prompt + ours_text)
                    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
                    r["greedy_text_same_tokens"] = i - len(prompt)
                    if i < min(len(a), len(b)):
                        row = our_logits(args.slm, args.model, [a[:i]], vocab, args.threads)[0][i - 1]
                        r["greedy_text_parting_margin"] = float(row[a[i]] - row[b[i]])
            # Speed, interleaved: llama.cpp, then ours, `rounds` times.
            theirs_speed, ours_speed = [], []
            for _ in range(args.rounds):
                theirs_speed.append(their_speed(llm, prompt[:16], args.speed_tokens))
                out = run([args.slm, "bench", "generate", "--model", args.model, "--prompt", "16", "--tokens",
                           str(args.speed_tokens), "--repeats", "1", "--cache-only", "--json", "--weights", weights,
                           "--threads", str(args.threads)])
                ours_speed.append(json.loads(out[out.index("{"):])["tokensPerSecond"])
            r["llamacpp_tokens_per_s"] = {"median": statistics.median(theirs_speed), "best": max(theirs_speed)}
            r[f"slm_{weights}_tokens_per_s"] = {"median": statistics.median(ours_speed), "best": max(ours_speed)}
            results[kind] = r
            del llm
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
