#!/usr/bin/env python3
"""Soak test of `slm serve`: many concurrent streaming clients for minutes, with clients
that disconnect and cancel, mixed prompt lengths, and checks on every answer.

    swift build -c release --product slm
    python3 scripts/soak.py [--minutes 10] [--levels 16,64] [--model DIR] [--json]

Each level runs --minutes with that many client threads; each client loops over requests:
  - 60% streamed chat completions, read to the end and checked: a role chunk first, then
    content, one finish_reason, a usage chunk, `[DONE]`; the tokens streamed (one logprobs
    entry each) equal usage.completion_tokens. A third of them are greedy (temperature 0)
    and are recorded for the replay;
  - 10% non-streamed text completions (checked: choices, finish_reason, usage);
  - 15% cancels: read one to five chunks, then close the connection;
  - 15% disconnects: send the request and close before reading anything.
Prompts are short, medium or longer than the context; the long ones either opt into
truncation (`truncate_prompt_tokens: -1`) or expect 400 context_length_exceeded.

Afterwards: the greedy answers are replayed one at a time on the now idle server and must
match (the scheduler decodes each session on its own, so 100% is expected); /metrics must
show no 5xx and 0 active sessions. Resident memory is sampled every second: at each level's
end it must be within 10% of what it was after that level's first minute (a steady load
must not make memory creep). Without --model it trains a micro model first (context 128).
Loopback only, bounded in time; the server it starts is stopped at the end. Exit 1 on any
failed check.
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_bench import HOST, add_server_options, start_server, stop_server, train_micro  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_options(p)
    p.add_argument("--levels", default="16,64")
    p.add_argument("--minutes", type=float, default=10, help="minutes per level")
    p.add_argument("--replay-limit", type=int, default=400, help="greedy answers replayed at most")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    random.seed(args.seed)

    text = re.sub(r"[^a-z. ]+", " ", open(args.corpus, encoding="utf-8").read().lower())
    text = re.sub(r" +", " ", text)
    work = tempfile.mkdtemp(prefix="slm-soak-")
    server = None
    report = {"levels": [], "failures": []}
    try:
        model = args.model or train_micro(args.slm, args.corpus, work)
        server, port = start_server(args.slm, model, work, args.threads)
        rss = RSSSampler(server.pid, port)
        rss.start()
        greedy = []
        for level in [int(x) for x in args.levels.split(",")]:
            started = rss.elapsed()
            stats = run_level(port, level, args.minutes * 60, text, greedy, report["failures"])
            # Memory under a steady load: after its first minute, each minute, and at its end.
            timeline = [rss.at(started + 60 * m) for m in range(1, int(args.minutes) + 1)] + [rss.last()]
            stats["rss_mib_per_minute"] = [round(mib(b), 1) for b in timeline]
            stats["buffer_cache_mib_per_minute"] = [round(mib(rss.cache_at(started + 60 * m)), 1) for m in range(1, int(args.minutes) + 1)]
            report["levels"].append(stats)
            say(args, f"{level:>3} clients, {args.minutes:g} min: " + ", ".join(f"{v} {k}" for k, v in stats["counts"].items())
                + f"; {stats['completion_tokens']} tokens streamed")
            say(args, f"    resident memory from the first minute on (MiB): {' '.join(f'{x:.1f}' for x in stats['rss_mib_per_minute'])}")
            say(args, f"    of which cached tensor buffers (MiB): {' '.join(f'{x:.1f}' for x in stats['buffer_cache_mib_per_minute'])}")
            first, last = timeline[0], timeline[-1]
            if first and last > 1.1 * first:
                report["failures"].append(f"{level} clients: RSS grew from {mib(first):.1f} MiB after the first minute to {mib(last):.1f} MiB")
        time.sleep(2)  # cancelled sessions end at their next token
        replay = greedy[: args.replay_limit]
        same = sum(1 for r in replay if greedy_answer(port, r["body"]) == r["content"])
        report["replay"] = {"replayed": len(replay), "same": same, "recorded": len(greedy)}
        say(args, f"greedy replay on the idle server: {same} of {len(replay)} identical"
            + (f" ({100 * same / len(replay):.1f}%)" if replay else ""))
        if replay and same / len(replay) < 0.99:
            report["failures"].append(f"greedy replay matched {same} of {len(replay)}")

        metrics = read_metrics(port)
        server_5xx = sum(v for k, v in metrics.items() if k.startswith("slm_requests_total") and 'status="5' in k)
        active = metrics.get("slm_active_sessions", -1)
        report["metrics"] = {"requests_5xx": server_5xx, "active_sessions": active,
                             "requests_total": sum(v for k, v in metrics.items() if k.startswith("slm_requests_total")),
                             "buffer_cache_bytes": metrics.get("slm_buffer_cache_bytes")}
        say(args, f"/metrics: {report['metrics']['requests_total']:.0f} requests, {server_5xx:.0f} with 5xx, "
            f"{active:.0f} sessions active at the end")
        if server_5xx:
            report["failures"].append(f"/metrics counts {server_5xx:.0f} responses with 5xx")
        if active != 0:
            report["failures"].append(f"{active} sessions still active at the end")

        rss.stop()
        report["rss_mib"] = {"idle_at_the_end": mib(rss.last()), "peak": mib(rss.peak())}
        say(args, f"resident memory: peak {mib(rss.peak()):.1f} MiB, {mib(rss.last()):.1f} MiB once idle")
        report["loadavg"] = os.getloadavg()
    finally:
        stop_server(server, grace=40)
        shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps(report, indent=2))
    for f in report["failures"][:20]:
        print("FAILED:", f, file=sys.stderr)
    if report["failures"]:
        print(f"{len(report['failures'])} failed checks", file=sys.stderr)
        sys.exit(1)
    say(args, "all checks passed")


def say(args, line):
    if not args.json:
        print(line, flush=True)


def mib(b):
    return (b or 0) / (1 << 20)


class RSSSampler(threading.Thread):
    """Samples the server's VmRSS every second, and its buffer cache (from /metrics) every
    10 seconds: (seconds since start, bytes)."""

    def __init__(self, pid, port):
        super().__init__(daemon=True)
        self.pid, self.port, self.done, self.started = pid, port, threading.Event(), time.monotonic()
        self.samples, self.cache = [], []

    def run(self):
        while not self.done.wait(1.0):
            t = time.monotonic() - self.started
            try:
                for line in open(f"/proc/{self.pid}/status"):
                    if line.startswith("VmRSS:"):
                        self.samples.append((t, int(line.split()[1]) * 1024))
                if len(self.samples) % 10 == 1:
                    self.cache.append((t, read_metrics(self.port).get("slm_buffer_cache_bytes", 0)))
            except OSError:
                return

    def cache_at(self, seconds):
        later = [b for t, b in self.cache if t >= seconds]
        return later[0] if later else (self.cache[-1][1] if self.cache else 0)

    def stop(self):
        self.done.set()
        self.join()

    def elapsed(self):
        return time.monotonic() - self.started

    def at(self, seconds):
        later = [b for t, b in self.samples if t >= seconds]
        return later[0] if later else (self.samples[-1][1] if self.samples else 0)

    def last(self):
        return self.samples[-1][1] if self.samples else 0

    def peak(self):
        return max((b for _, b in self.samples), default=0)


def prompt(text, rng, kind):
    length = {"short": rng.randint(5, 30), "medium": rng.randint(40, 100), "long": rng.randint(200, 600)}[kind]
    start = rng.randrange(0, len(text) - length)
    return text[start:start + length].strip() or "justice"


def run_level(port, clients, seconds, text, greedy, failures):
    counts = {k: 0 for k in ("streams", "completions", "cancels", "disconnects", "refused_as_expected",
                             "rate_limited", "other_4xx", "5xx", "errors")}
    tokens = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def fail(message):
        with lock:
            failures.append(message)

    def count(key, n=1):
        with lock:
            counts[key] += n

    def client(index):
        rng = random.Random(index * 7919 + clients)
        while time.monotonic() < deadline:
            roll = rng.random()
            kind = rng.choice(["short", "short", "medium", "long"])
            body = {"model": "bench", "messages": [{"role": "user", "content": prompt(text, rng, kind)}],
                    "max_tokens": rng.randint(4, 64), "seed": rng.randrange(1 << 31), "stream": True,
                    "stream_options": {"include_usage": True}, "logprobs": True,
                    "temperature": 0 if rng.random() < 1 / 3 else 0.8}
            expect_refusal = kind == "long" and rng.random() < 0.2
            if kind == "long" and not expect_refusal:
                body["truncate_prompt_tokens"] = -1
            try:
                if roll < 0.15:
                    disconnect(port, body)
                    count("disconnects")
                elif roll < 0.30:
                    status = cancel(port, body, rng.randint(1, 5))
                    classify(status, expect_refusal, count, fail, "cancel")
                    if status == 200:
                        count("cancels")
                elif roll < 0.40:
                    completion = {"model": "bench", "prompt": body["messages"][0]["content"],
                                  "max_tokens": body["max_tokens"], "seed": body["seed"],
                                  "temperature": body["temperature"]}
                    if "truncate_prompt_tokens" in body:
                        completion["truncate_prompt_tokens"] = -1
                    status, problem = text_completion(port, completion)
                    classify(status, expect_refusal, count, fail, "completion")
                    if status == 200:
                        count("completions")
                        if problem:
                            fail(f"completion: {problem}")
                else:
                    status, result = full_stream(port, body)
                    classify(status, expect_refusal, count, fail, "stream")
                    if status == 200:
                        count("streams")
                        if isinstance(result, str):
                            fail(f"stream: {result}")
                        else:
                            with lock:
                                tokens[0] += result["tokens"]
                                if body["temperature"] == 0:
                                    greedy.append({"body": body, "content": result["content"]})
            except Exception as e:  # noqa: BLE001 - a client-side failure is a failed check
                count("errors")
                fail(f"client error: {e!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"clients": clients, "seconds": time.monotonic() - started, "counts": counts, "completion_tokens": tokens[0]}


def classify(status, expect_refusal, count, fail, what):
    if status >= 500:
        count("5xx")
        fail(f"{what}: status {status}")
    elif status == 429:
        count("rate_limited")
    elif status == 400 and expect_refusal:
        count("refused_as_expected")
    elif status != 200:
        count("other_4xx")
        fail(f"{what}: unexpected status {status}")
    elif expect_refusal:
        fail(f"{what}: a prompt beyond the context without truncation was accepted")


def post(port, path, body):
    conn = http.client.HTTPConnection(HOST, port, timeout=300)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    return conn, conn.getresponse()


def disconnect(port, body):
    """Sends a whole request and closes the socket without reading the answer."""
    raw = json.dumps(body).encode()
    with socket.create_connection((HOST, port), timeout=30) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw)


def cancel(port, body, chunks):
    conn, response = post(port, "/v1/chat/completions", body)
    try:
        if response.status != 200:
            response.read()
            return response.status
        seen = 0
        for line in response:
            if line.startswith(b"data: "):
                seen += 1
                if seen >= chunks:
                    break
        return 200
    finally:
        conn.close()


def full_stream(port, body):
    """Reads a streamed chat completion to the end: (status, facts or a description of what is wrong)."""
    conn, response = post(port, "/v1/chat/completions", body)
    try:
        if response.status != 200:
            response.read()
            return response.status, None
        events = []
        for line in response:
            if line.startswith(b"data: "):
                events.append(line[6:].strip())
        if not events or events[-1] != b"[DONE]":
            return 200, "the stream does not end with [DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        if len(chunks) < 3:
            return 200, f"only {len(chunks)} chunks"
        first, usage_chunk, body_chunks = chunks[0], chunks[-1], chunks[1:-1]
        if first["choices"][0]["delta"].get("role") != "assistant":
            return 200, "the first chunk has no assistant role"
        if usage_chunk["choices"] or not usage_chunk.get("usage"):
            return 200, "the last chunk before [DONE] is not the usage chunk"
        finishes = [c["choices"][0]["finish_reason"] for c in body_chunks if c["choices"][0].get("finish_reason")]
        if len(finishes) != 1 or not body_chunks[-1]["choices"][0].get("finish_reason"):
            return 200, f"finish_reason given {len(finishes)} times, or not in the last choice chunk"
        if finishes[0] not in ("stop", "length"):
            return 200, f"finish_reason {finishes[0]}"
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in body_chunks)
        streamed = sum(len((c["choices"][0].get("logprobs") or {}).get("content") or []) for c in body_chunks)
        usage = usage_chunk["usage"]
        if streamed != usage["completion_tokens"]:
            return 200, f"{streamed} tokens streamed, usage says {usage['completion_tokens']}"
        if usage["completion_tokens"] > body["max_tokens"]:
            return 200, f"{usage['completion_tokens']} tokens for max_tokens {body['max_tokens']}"
        if finishes[0] == "length" and usage["completion_tokens"] != body["max_tokens"]:
            return 200, f"finish_reason length after {usage['completion_tokens']} of {body['max_tokens']} tokens"
        return 200, {"tokens": streamed, "content": content}
    finally:
        conn.close()


def text_completion(port, body):
    conn, response = post(port, "/v1/completions", body)
    try:
        raw = response.read()
        if response.status != 200:
            return response.status, None
        answer = json.loads(raw)
        choice = answer["choices"][0]
        if choice.get("finish_reason") not in ("stop", "length") or "text" not in choice:
            return 200, f"choice {choice!r}"
        if answer["usage"]["completion_tokens"] > body["max_tokens"]:
            return 200, f"usage {answer['usage']!r} for max_tokens {body['max_tokens']}"
        return 200, None
    finally:
        conn.close()


def greedy_answer(port, body):
    status, result = full_stream(port, body)
    return result["content"] if status == 200 and isinstance(result, dict) else None


def read_metrics(port):
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        out = {}
        for line in conn.getresponse().read().decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out
    finally:
        conn.close()


if __name__ == "__main__":
    main()
