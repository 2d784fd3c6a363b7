#!/usr/bin/env python3
"""Measures what a long prompt does to the other streams of `slm serve`: the gaps between
the tokens of a running stream (A), idle and while full-context prompts (B) are read,
for several --prefill-chunk settings (0: whole prompts at once).

    python3 scripts/prefill_gap.py --model CKPT --text data/val.txt [--chunks 0,16,64] [--trials 5]

The model's context should be 1,024 or more. Loopback only; the server is stopped at the end.
"""
import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def stream_tokens(port, prompt, max_tokens, stamps, stop):
    """Streams a completion, appending each chunk's arrival time to `stamps`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = json.dumps({"model": "m", "prompt": prompt, "max_tokens": max_tokens, "stream": True, "temperature": 0})
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    while not stop.is_set():
        line = response.readline()
        if not line or line.startswith(b"data: [DONE]"):
            break
        if line.startswith(b"data: {"):
            stamps.append(time.perf_counter())
    conn.close()


def complete(port, prompt, keep):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = json.dumps({"model": "m", "prompt": prompt, "max_tokens": 1, "truncate_prompt_tokens": keep})
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = json.loads(conn.getresponse().read())
    conn.close()
    return r["usage"]["prompt_tokens"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True, help="text for the long prompts")
    ap.add_argument("--slm", default=".build/release/slm")
    ap.add_argument("--chunks", default="0,16,64,256")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    context = json.load(open(os.path.join(args.model, "config.json")))["context"]
    text = open(args.text).read()
    results = []
    for chunk in [int(c) for c in args.chunks.split(",")]:
        server = subprocess.Popen([args.slm, "serve", "--model", args.model, "--port", "0", "--model-name", "m",
                                   "--prefill-chunk", str(chunk), "--threads", str(args.threads)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            port = int(re.search(r":(\d+)", server.stdout.readline().split("http://")[1]).group(1))
            idle, during, prefill_seconds, prompt_tokens = [], [], [], 0
            for trial in range(args.trials):
                stamps, stop = [], threading.Event()
                a = threading.Thread(target=stream_tokens, args=(port, "The soul is", context // 2, stamps, stop))
                a.start()
                while len(stamps) < 120:
                    time.sleep(0.005)
                start = len(stamps)
                sent = time.perf_counter()
                long_prompt = text[trial * 20000:(trial + 1) * 20000]
                prompt_tokens = complete(port, long_prompt, context - 8)
                done = time.perf_counter()
                prefill_seconds.append(done - sent)
                stop.set()
                a.join()
                gaps = [b - a_ for a_, b in zip(stamps, stamps[1:])]
                idle += gaps[20:start - 1]
                during += [g for (t0, g) in zip(stamps, gaps) if t0 >= sent and t0 < done]
            row = {"prefill_chunk": chunk, "long_prompt_tokens": prompt_tokens,
                   "idle_gap_ms": {"p50": 1e3 * statistics.median(idle), "p99": 1e3 * percentile(idle, 99)},
                   "gap_during_long_prompt_ms": {"p50": 1e3 * statistics.median(during), "p99": 1e3 * percentile(during, 99),
                                                 "max": 1e3 * max(during), "samples": len(during)},
                   "long_prompt_latency_ms": 1e3 * statistics.median(prefill_seconds)}
            row["p99_during_over_idle_p50"] = row["gap_during_long_prompt_ms"]["p99"] / row["idle_gap_ms"]["p50"]
            results.append(row)
            print(json.dumps(row), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return results


if __name__ == "__main__":
    main()
