#!/usr/bin/env python3
"""Drives a running `slm serve` with the official openai client (and a raw socket for
disconnects). Prints one line per check and a final "N passed, M failed"; exits 0 only
if every check passed. Loopback only.

    python3 scripts/server_integration.py --port PORT --model NAME --api-key KEY
"""

import argparse
import http.client
import json
import re
import socket
import sys
import time
import urllib.request

import openai

HOST = "127.0.0.1"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    base = f"http://{HOST}:{args.port}"

    wait_for_health(base, seconds=60)
    client = openai.OpenAI(base_url=base + "/v1", api_key=args.api_key, timeout=60, max_retries=0)
    checks = Checks()

    @checks.add
    def list_models():
        models = client.models.list().data
        assert [m.id for m in models] == [args.model], models
        assert client.models.retrieve(args.model).id == args.model

    @checks.add
    def chat_completion():
        r = client.chat.completions.create(
            model=args.model,
            messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is virtue?"}],
            max_tokens=24, temperature=0.7, seed=1)
        assert r.object == "chat.completion" and r.id.startswith("chatcmpl-"), r
        choice = r.choices[0]
        assert choice.message.role == "assistant" and isinstance(choice.message.content, str), choice
        assert choice.finish_reason in ("stop", "length"), choice
        assert r.usage.completion_tokens <= 24 and r.usage.prompt_tokens > 0, r.usage
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage

    @checks.add
    def streamed_chat_arrives_in_pieces():
        started = time.monotonic()
        stream = client.chat.completions.create(
            model=args.model, messages=[{"role": "user", "content": "Tell me about the soul."}],
            max_tokens=300, temperature=0.8, seed=2, stream=True, stream_options={"include_usage": True})
        chunks, arrivals = [], []
        for chunk in stream:
            chunks.append(chunk)
            arrivals.append(time.monotonic() - started)
        assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        assert len(pieces) >= 3, f"content came in {len(pieces)} chunks"
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes in (["stop"], ["length"]), finishes
        usage = chunks[-1]
        assert usage.choices == [] and usage.usage.completion_tokens > 0, usage
        # Tokens were sent as they were made: the first content long before the last.
        first_content = next(t for c, t in zip(chunks, arrivals) if c.choices and c.choices[0].delta.content)
        assert first_content < 0.5 * arrivals[-1], f"first content at {first_content:.3f} s, end at {arrivals[-1]:.3f} s"

    @checks.add
    def completion_with_logprobs():
        r = client.completions.create(model=args.model, prompt="Socrates said that", max_tokens=12, logprobs=3, seed=3)
        assert r.object == "text_completion" and r.id.startswith("cmpl-"), r
        choice = r.choices[0]
        lp = choice.logprobs
        assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == r.usage.completion_tokens
        assert all(len(top) <= 3 for top in lp.top_logprobs), lp.top_logprobs
        assert "".join(lp.tokens).startswith(choice.text) or choice.finish_reason == "stop"

    @checks.add
    def streamed_completion():
        pieces = [c.choices[0].text for c in client.completions.create(
            model=args.model, prompt="the ", max_tokens=20, stream=True, seed=4) if c.choices]
        assert len([p for p in pieces if p]) >= 3, pieces

    @checks.add
    def n_choices_and_stop():
        r = client.chat.completions.create(model=args.model, messages=[{"role": "user", "content": "hello"}],
                                           n=2, max_tokens=10, stop=["xq"], temperature=1.0)
        assert [c.index for c in r.choices] == [0, 1], r.choices

    @checks.add
    def bad_requests():
        expect(openai.BadRequestError, lambda: client.chat.completions.create(
            model=args.model, messages=[{"role": "user", "content": "hi"}], temperature=5))
        expect(openai.BadRequestError, lambda: client.chat.completions.create(
            model=args.model, messages=[{"role": "user", "content": "hi"}], max_tokens=0))
        expect(openai.BadRequestError, lambda: client.chat.completions.create(
            model=args.model, messages=[{"role": "tool", "content": "hi", "tool_call_id": "x"}]))
        e = expect(openai.NotFoundError, lambda: client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]))
        assert e.code == "model_not_found", e.body
        wrong = openai.OpenAI(base_url=base + "/v1", api_key="wrong-key", timeout=30, max_retries=0)
        expect(openai.AuthenticationError, lambda: wrong.models.list())
        e = expect(openai.BadRequestError, lambda: client.completions.create(model=args.model, prompt="a", top_p=1.5))
        assert e.param == "top_p", e.body

    @checks.add
    def key_guards_every_path_spelling():
        # Request targets sent byte for byte (like curl --path-as-is): none may answer
        # 2xx without the key.
        body = {"model": args.model, "prompt": "a", "max_tokens": 2}
        for method, path in [("GET", "//v1/models"), ("GET", "/v1//models"), ("GET", "/v1/models/"),
                             ("GET", "/v1/./models"), ("POST", "//v1/completions"), ("POST", "/v1//completions"),
                             ("POST", "/v1/completions/"), ("POST", "//v1//chat//completions")]:
            status = raw_status(args.port, method, path, None, body if method == "POST" else None)
            assert not 200 <= status < 300, f"{method} {path} answered {status} without the key"

    @checks.add
    def open_routes():
        assert get_json(base + "/health") == {"status": "ok"}
        page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
        assert "/v1/chat/completions" in page and "getReader" in page
        metrics = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
        assert 'slm_requests_total{route="/v1/chat/completions",status="200"}' in metrics, metrics
        assert "slm_time_to_first_token_seconds_count" in metrics

    @checks.add
    def stream_disconnect_frees_the_session():
        before = metric(base, "slm_generated_tokens_total")
        sock = raw_request(args.port, args.api_key, {
            "model": args.model, "messages": [{"role": "user", "content": "go on"}], "max_tokens": 4000, "stream": True})
        data = b""
        while data.count(b"data: ") < 3:  # some events: it is generating
            data += sock.recv(4096)
        sock.close()
        wait_until(lambda: metric(base, "slm_active_sessions") == 0, seconds=10)
        # Finished generations count their tokens; this one was dropped unfinished.
        assert metric(base, "slm_generated_tokens_total") - before < 4000

    @checks.add
    def non_streamed_disconnect_frees_the_session():
        before = metric(base, "slm_generated_tokens_total")
        sock = raw_request(args.port, args.api_key, {"model": args.model, "prompt": "go on", "max_tokens": 4000})
        wait_until(lambda: metric(base, "slm_active_sessions") >= 1, seconds=10)
        sock.close()
        wait_until(lambda: metric(base, "slm_active_sessions") == 0, seconds=10)
        assert metric(base, "slm_generated_tokens_total") - before < 4000

    sys.exit(checks.run())


class Checks:
    def __init__(self):
        self.checks = []

    def add(self, fn):
        self.checks.append(fn)
        return fn

    def run(self):
        passed = failed = 0
        for fn in self.checks:
            started = time.monotonic()
            try:
                fn()
                passed += 1
                print(f"ok   {fn.__name__} ({time.monotonic() - started:.2f} s)", flush=True)
            except Exception as e:  # noqa: BLE001 - report every kind of failure
                failed += 1
                print(f"FAIL {fn.__name__}: {type(e).__name__}: {e}", flush=True)
        print(f"{passed} passed, {failed} failed", flush=True)
        return 0 if failed == 0 else 1


def expect(error_type, call):
    try:
        call()
    except error_type as e:
        return e
    raise AssertionError(f"expected {error_type.__name__}")


def wait_for_health(base, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if get_json(base + "/health").get("status") == "ok":
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the server did not answer /health within {seconds} s")
        time.sleep(0.2)


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def metric(base, name):
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(m.group(1))


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        time.sleep(0.02)


def raw_status(port, method, path, key, body):
    """The status of one request whose target is sent exactly as given."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


def raw_request(port, key, body):
    """Sends a POST on a raw socket (to be able to drop the connection mid-answer)."""
    payload = json.dumps(body).encode()
    path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
    sock = socket.create_connection((HOST, port), timeout=30)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
    return sock


if __name__ == "__main__":
    main()
