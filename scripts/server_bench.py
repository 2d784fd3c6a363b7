#!/usr/bin/env python3
"""Load test of `slm serve`: throughput and latency at 1, 4, 16 and 64 concurrent streaming
clients. Loopback only, bounded in requests and time, stops the server it started.

    swift build -c release --product slm
    python3 scripts/server_bench.py [--slm .build/release/slm] [--model DIR] [--threads N] [--json]

Without --model it trains a micro-size model (presets/micro.toml: 4 layers, width 128,
context 128) for a few steps on one book first; the weights barely matter for speed.
Each client sends streaming chat completions one after another (max_tokens each; a
barely trained model rarely stops early).
Reported per level: completion tokens per second over the level's wall time, and the
p50/p99 of time to first token (first content chunk), of the gap between a stream's
content chunks (inter-token latency), and of total request time, and the cores that the
server and this client kept busy (Linux; from /proc). The server runs with
--max-sessions at least the largest level, so that every stream decodes at once. The
client runs on the same machine as the server: on two cores they compete, so note the
load (printed at the end).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
# A chunk whose delta carries text: "content" followed by a non-empty string.
HAS_CONTENT = re.compile(rb'"content":"[^"]')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_options(p)
    p.add_argument("--levels", default="1,4,16,64")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--requests", type=int, default=64, help="requests per level at most")
    p.add_argument("--seconds", type=float, default=60, help="time per level at most")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="slm-bench-")
    server = None
    try:
        model = args.model or train_micro(args.slm, args.corpus, work)
        most = max(int(x) for x in args.levels.split(","))
        server, port = start_server(args.slm, model, work, args.threads, sessions=max(32, most), extra=args.serve_flag)
        warm(port)
        results = []
        for level in [int(x) for x in args.levels.split(",")]:
            results.append(run_level(port, level, args, server.pid))
            r = results[-1]
            if not args.json:
                print(f"{r['clients']:>3} clients: {r['requests']:>4} requests, {r['completion_tokens']:>6} tokens in "
                      f"{r['seconds']:6.2f} s = {r['tokens_per_s']:7.0f} tokens/s | first token p50 {r['ttft_p50_ms']:7.1f} ms "
                      f"p99 {r['ttft_p99_ms']:7.1f} ms | between tokens p50 {r['itl_p50_ms']:6.1f} ms p99 {r['itl_p99_ms']:6.1f} ms "
                      f"| total p50 {r['total_p50_ms']:7.1f} ms p99 {r['total_p99_ms']:7.1f} ms "
                      f"| cores busy: server {r['server_cores']:.2f}, this client {r['client_cores']:.2f}",
                      flush=True)
        load = os.getloadavg()
        if args.json:
            print(json.dumps({"max_tokens": args.max_tokens, "loadavg": load, "levels": results}, indent=2))
        else:
            print(f"load average while running (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        stop_server(server)
        shutil.rmtree(work, ignore_errors=True)


def add_server_options(p):
    """The options of a script that starts its own `slm serve`: the binary, the model (or
    the book a micro model is trained on) and the server's threads."""
    p.add_argument("--slm", default=".build/release/slm")
    p.add_argument("--model", help="model folder (default: train a micro model on the spot)")
    p.add_argument("--corpus", default="../shared/corpus/raw/logic/plato_meno.txt")
    p.add_argument("--threads", type=int, help="slm serve --threads (default: its own, all cores)")
    p.add_argument("--serve-flag", action="append", default=[], help="extra `slm serve` flag, e.g. --no-batching (repeatable)")


def train_micro(slm, corpus, work):
    data, run = os.path.join(work, "data"), os.path.join(work, "run")
    quiet = {"stdout": subprocess.DEVNULL, "check": True, "timeout": 600}
    subprocess.run([slm, "data", "prepare", "--corpus", corpus, "--out", data, "--charset", "micro"], **quiet)
    subprocess.run([slm, "data", "tokenize", "--data", data, "--tokenizer", "char"], **quiet)
    subprocess.run([slm, "train", "--preset", "micro", "--data", data, "--out", run, "--steps", "20",
                    "--eval-interval", "20", "--sample", "0"], **quiet)
    return os.path.join(run, "best")


def start_server(slm, model, work, threads, sessions=None, extra=()):
    log_path = os.path.join(work, "serve.log")
    log = open(log_path, "w")
    command = [slm, "serve", "--model", model, "--host", HOST, "--port", "0", "--model-name", "bench"]
    if sessions:
        command += ["--max-sessions", str(sessions)]
    command += list(extra)
    if threads:
        command += ["--threads", str(threads)]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"on http://127\.0\.0\.1:(\d+)", open(log_path).read())
        if m:
            return server, int(m.group(1))
        if server.poll() is not None:
            raise SystemExit("the server exited:\n" + open(log_path).read())
        time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start within 60 s")


def stop_server(server, grace=15):
    """SIGTERM (the server drains), then SIGKILL after `grace` seconds."""
    if not server:
        return
    server.terminate()
    try:
        server.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        server.kill()


def stream_request(port, max_tokens, seed):
    """One streamed chat completion: (time to first content, total time, completion tokens,
    gaps between content chunks)."""
    body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "Tell me about justice."}],
                       "max_tokens": max_tokens, "temperature": 0.8, "seed": seed, "stream": True,
                       "stream_options": {"include_usage": True}})
    started = time.monotonic()
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}: {response.read()[:200]!r}")
        first, tokens, last, gaps = None, 0, None, []
        for line in response:
            if not line.startswith(b"data: "):
                continue
            payload = line[6:].strip()
            if payload == b"[DONE]":
                break
            # Only the usage chunk is parsed: on two cores, this client competes with the
            # server it measures, and a JSON parse per token was a good part of its cost.
            if b'"usage":{' in payload:
                tokens = json.loads(payload)["usage"]["completion_tokens"]
            if HAS_CONTENT.search(payload):
                now = time.monotonic()
                if first is None:
                    first = now - started
                else:
                    gaps.append(now - last)
                last = now
        return first if first is not None else float("nan"), time.monotonic() - started, tokens, gaps
    finally:
        conn.close()


def warm(port):
    for i in range(3):
        stream_request(port, 16, i)


def cpu_seconds(pid):
    """User + system CPU time of a process so far (Linux /proc), or nan elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def run_level(port, clients, args, server_pid):
    """One level's figures, with the cores the server and this client kept busy: on a
    small machine the client's parsing competes with the server for the same cores."""
    samples, errors, lock = [], [], threading.Lock()
    budget = [args.requests]
    deadline = time.monotonic() + args.seconds

    def client(index):
        n = 0
        while time.monotonic() < deadline:
            with lock:
                if budget[0] == 0:
                    return
                budget[0] -= 1
            try:
                result = stream_request(port, args.max_tokens, seed=1000 * index + n)
                with lock:
                    samples.append(result)
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(repr(e))
            n += 1

    started, server_cpu, client_cpu = time.monotonic(), cpu_seconds(server_pid), time.process_time()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    server_cpu, client_cpu = cpu_seconds(server_pid) - server_cpu, time.process_time() - client_cpu
    if errors:
        print(f"{len(errors)} errors, e.g. {errors[0]}", file=sys.stderr)
    ttft = [s[0] * 1000 for s in samples]
    total = [s[1] * 1000 for s in samples]
    tokens = sum(s[2] for s in samples)
    gaps = [g * 1000 for s in samples for g in s[3]]
    return {"clients": clients, "requests": len(samples), "errors": len(errors), "completion_tokens": tokens,
            "seconds": wall, "tokens_per_s": tokens / wall,
            "ttft_p50_ms": percentile(ttft, 50), "ttft_p99_ms": percentile(ttft, 99),
            "itl_p50_ms": percentile(gaps, 50), "itl_p99_ms": percentile(gaps, 99),
            "total_p50_ms": percentile(total, 50), "total_p99_ms": percentile(total, 99),
            "server_cores": server_cpu / wall, "client_cores": client_cpu / wall}


def percentile(values, q):
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


if __name__ == "__main__":
    main()
