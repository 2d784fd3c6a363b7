#!/usr/bin/env python3
"""Byte-level BPE in swift-slm against Hugging Face `tokenizers`, on one text file.

    pip install tokenizers
    swift build -c release
    python3 benchmarks/tokenizer_compare.py [FILE] [--slm .build/release/slm]

Both sides do the same work:
  training  ByteLevelBPETokenizer(add_prefix_space=False).train([FILE], vocab_size,
            min_frequency=2, special_tokens=["<|endoftext|>"]) against
            `slm bench tokenizer` (BPETrainer.train(files:), same settings);
            both read the file and count words line by line.
  encoding  (a) the whole file as one string: HF `encode(text)` (one thread; a single
            encode does not parallelise) against ours on one thread and on --threads
            threads (cut at newlines where the ids cannot change);
            (b) the file's lines, newlines kept: HF `encode_batch(lines)` (Rayon, with
            RAYON_NUM_THREADS=--threads) against our `encodeBatch` on --threads threads.
            Every HF timing uses a fresh tokenizer, so its word cache starts empty, as
            ours does on every call.
Times are medians of --repeats runs after one warm-up run. Unless --no-check, it also
trains with `slm tokenizer train` and checks that its tokenizer.json is identical to
Hugging Face's, and encodes the file with `slm tokenizer encode` using Hugging Face's
tokenizer.json and checks that the ids are identical.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def median_seconds(fn, repeats, setup=None):
    """Median wall time of fn(setup()) over `repeats` runs after one warm-up run."""
    times = []
    for i in range(repeats + 1):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        fn(arg)
        dt = time.perf_counter() - t0
        if i > 0:
            times.append(dt)
    return statistics.median(times), times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", nargs="?", default="../shared/corpus/bench/tinyshakespeare.txt")
    ap.add_argument("--slm", default=".build/release/slm", help="path to the slm binary (release build)")
    ap.add_argument("--vocab-size", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-check", action="store_true", help="skip the identical-output check")
    args = ap.parse_args()

    # Rayon reads these when its pool starts, so before tokenizers is imported.
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    import tokenizers
    from tokenizers import ByteLevelBPETokenizer, Tokenizer

    with open(args.input, "rb") as f:
        data = f.read()
    text = data.decode("utf-8")
    lines = text.split("\n")
    lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    mb = len(data) / 1e6
    special = ["<|endoftext|>"]

    print(f"input: {args.input} ({mb:.2f} MB, {len(lines)} lines); vocabulary {args.vocab_size}; "
          f"{args.threads} threads; tokenizers {tokenizers.__version__}")

    # Hugging Face
    trained = {}

    def hf_train(_):
        t = ByteLevelBPETokenizer(add_prefix_space=False)
        t.train([args.input], vocab_size=args.vocab_size, min_frequency=2, special_tokens=special, show_progress=False)
        trained["t"] = t

    hf_train_s, hf_train_all = median_seconds(hf_train, args.repeats)
    serialized = trained["t"].to_str(pretty=True)

    def fresh(_=None):
        return Tokenizer.from_str(serialized)

    hf_whole_s, _ = median_seconds(lambda t: t.encode(text), args.repeats, setup=fresh)
    hf_lines_s, _ = median_seconds(lambda t: t.encode_batch(lines), args.repeats, setup=fresh)
    hf_ids = fresh().encode(text).ids

    # swift-slm
    out = subprocess.run([args.slm, "bench", "tokenizer", "--input", args.input, "--vocab-size", str(args.vocab_size),
                          "--repeats", str(args.repeats), "--threads", str(args.threads), "--json"],
                         check=True, capture_output=True, text=True)
    ours = json.loads(out.stdout)
    if not ours.get("release", False):
        print("warning: the slm binary is a debug build; its figures are meaningless", file=sys.stderr)

    rows = [
        ("training (s, lower is better)", hf_train_s, ours["train_seconds"], hf_train_s / ours["train_seconds"]),
        ("encode whole text, 1 thread (MB/s)", mb / hf_whole_s, ours["encode_single_thread_mb_per_s"],
         ours["encode_single_thread_mb_per_s"] / (mb / hf_whole_s)),
        (f"encode whole text, ours on {args.threads} threads (MB/s)", mb / hf_whole_s, ours["encode_mb_per_s"],
         ours["encode_mb_per_s"] / (mb / hf_whole_s)),
        (f"encode lines as a batch, {args.threads} threads (MB/s)", mb / hf_lines_s, ours["encode_lines_mb_per_s"],
         ours["encode_lines_mb_per_s"] / (mb / hf_lines_s)),
    ]
    print(f"\n{'':52} {'tokenizers':>11} {'swift-slm':>11} {'speed-up':>9}")
    for name, hf, us, ratio in rows:
        print(f"{name:52} {hf:11.3f} {us:11.3f} {ratio:8.2f}x")
    print(f"\ntraining: swift-slm takes {ours['train_seconds'] / hf_train_s:.2f}x the time of tokenizers "
          f"(runs: tokenizers {', '.join(f'{t:.3f}' for t in hf_train_all)} s; "
          f"swift-slm {', '.join(f'{t:.3f}' for t in ours['train_seconds_all'])} s)")
    print(f"tokens: {len(hf_ids)} (tokenizers), {ours['tokens']} (swift-slm), {len(data) / max(len(hf_ids), 1):.2f} bytes per token")

    if args.no_check:
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([args.slm, "tokenizer", "train", "--input", args.input, "--vocab-size", str(args.vocab_size),
                        "--out", tmp], check=True, capture_output=True)
        with open(os.path.join(tmp, "tokenizer.json"), encoding="utf-8") as f:
            ours_json = f.read()
        # Encode with tokenizers' own file, so this checks encoding alone.
        hf_dir = os.path.join(tmp, "hf")
        os.mkdir(hf_dir)
        with open(os.path.join(hf_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(serialized)
        enc = subprocess.run([args.slm, "tokenizer", "encode", "--tokenizer", hf_dir, "--input", args.input, "--json"],
                             check=True, capture_output=True, text=True)
        ours_ids = json.loads(enc.stdout)["ids"]
    same_file = ours_json == serialized
    if not same_file:
        a, b = json.loads(ours_json)["model"], json.loads(serialized)["model"]
        first = next((i for i, (x, y) in enumerate(zip(a["merges"], b["merges"])) if x != y), None)
        print(f"check: tokenizer.json differs from tokenizers' (vocab equal: {a['vocab'] == b['vocab']}, "
              f"merges {len(a['merges'])} vs {len(b['merges'])}, first different merge: {first})")
    else:
        print("check: tokenizer.json from `slm tokenizer train` is byte-identical to tokenizers' own")
    if ours_ids == hf_ids:
        print(f"check: `slm tokenizer encode` with tokenizers' file gives its {len(hf_ids)} ids exactly")
    else:
        first = next((i for i, (x, y) in enumerate(zip(ours_ids, hf_ids)) if x != y), min(len(ours_ids), len(hf_ids)))
        print(f"check: ids differ from tokenizers' (first at {first}; {len(ours_ids)} vs {len(hf_ids)})")


if __name__ == "__main__":
    main()
