#!/usr/bin/env python3
"""Drives the web pages of swift-slm in headless Chromium (selenium, Debian's
/usr/bin/chromium and /usr/bin/chromedriver; nothing is downloaded). Prints a PASS or
FAIL line per check and exits non-zero when one failed (with the server's log).

    python3 scripts/browser_test.py playground --slm .build/debug/slm --model CKPT_DIR --screenshots DIR
    python3 scripts/browser_test.py dashboard --slm .build/release/slm --data runs/data-micro --screenshots DIR

Subcommands:
  playground  starts `slm serve` on a free loopback port and drives the chat page at GET /:
              send, per-reply stats, copy, regenerate (same text at temperature 0 and a
              fixed seed), the request body's fields, history surviving a reload, clear.
  dashboard   trains a micro model with `slm train --dashboard` and watches the page while it
              trains: the loss curve and the run's figures update, the latest sample appears;
              then trains a small Symbio model and opens `slm dashboard` over both finished
              runs: two run cards, lines for both, the Symbio gate chart. Needs a tokenized
              character data folder (`slm data prepare … --charset micro` + `tokenize`).

The helpers at module level (make_driver, free_port, wait_for, start_process,
wait_for_http, Checks) are meant for further subcommands.
"""

import argparse
import atexit
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

os.environ["SE_AVOID_STATS"] = "true"  # selenium-manager: no telemetry (and it is never run: see make_driver)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOST = "127.0.0.1"


# --- shared helpers ----------------------------------------------------------------------

def make_driver(width=1200, height=900):
    """Headless Chromium with the system's chromedriver (so selenium-manager downloads nothing)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    atexit.register(_quit, driver)
    return driver


def _quit(driver):
    try:
        driver.quit()
    except Exception:
        pass


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.1):
    """Calls predicate until it returns something truthy (which is returned); exceptions
    count as not yet. Raises TimeoutError naming `what` (and the last exception)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # e.g. a stale element while the page re-renders
            last = e
        if time.monotonic() > deadline:
            detail = f" (last error: {type(last).__name__}: {last})" if last else ""
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}{detail}")
        time.sleep(interval)


def start_process(args, name=None):
    """Popen with stdout and stderr going to a temporary file (proc.log_path; read it with
    process_log); the process is terminated (then killed) when this script exits."""
    log = tempfile.NamedTemporaryFile(prefix=(name or os.path.basename(args[0])) + "-", suffix=".log", delete=False)
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    proc.log_path = log.name
    log.close()
    atexit.register(_stop, proc)
    return proc


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def process_log(proc, last=4000):
    with open(proc.log_path, errors="replace") as f:
        text = f.read()
    return text[-last:]


def http_status(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def wait_for_http(url, proc=None, timeout=120):
    """Waits until url answers 200; fails early if proc has exited."""
    def ready():
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"FAIL process exited with {proc.returncode} before {url} answered\n{process_log(proc)}")
        return http_status(url) == 200
    wait_for(ready, timeout, f"{url} to answer 200", interval=0.25)


def browser_errors(driver):
    """SEVERE console entries, leaving out the favicon the pages do not have."""
    return [e["message"] for e in driver.get_log("browser")
            if e.get("level") == "SEVERE" and "favicon" not in e.get("message", "")]


class Checks:
    """Runs named checks in order, printing PASS/FAIL; stops at the first failure, since
    later checks build on the page state earlier ones leave."""

    def __init__(self):
        self.passed = 0
        self.failed = None

    def run(self, name, fn):
        if self.failed:
            return None
        started = time.monotonic()
        try:
            value = fn()
        except Exception as e:
            self.failed = name
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            return None
        self.passed += 1
        print(f"PASS {name} ({time.monotonic() - started:.1f} s)", flush=True)
        return value


def conclude(checks, driver, name, screenshots, proc, label, shots):
    """The console check last; then PASS, or FAIL with a screenshot and the process's log. Returns the exit status."""
    def console():
        errors = browser_errors(driver)
        assert not errors, "\n".join(errors)
    checks.run("no errors in the browser console", console)
    if checks.failed:
        path = os.path.join(screenshots, f"{name}-failure.png")
        try:
            driver.save_screenshot(path)
            print(f"screenshot: {path}")
        except Exception:
            pass
        print(f"--- {label} log ({proc.log_path}) ---\n{process_log(proc)}")
        print(f"FAIL {name}: {checks.passed} passed, failed at: {checks.failed}")
        return 1
    print("screenshots: " + ", ".join(os.path.join(screenshots, s) for s in shots))
    print(f"PASS {name}: {checks.passed} checks")
    return 0


# --- playground --------------------------------------------------------------------------

def playground(args):
    os.makedirs(args.screenshots, exist_ok=True)
    port = free_port()
    server = start_process([args.slm, "serve", "--model", args.model, "--port", str(port)], name="slm-serve")
    base = f"http://{HOST}:{port}"
    wait_for_http(base + "/health", server, timeout=args.timeout)
    print(f"server up at {base} (log: {server.log_path})", flush=True)

    driver = make_driver()
    driver.set_script_timeout(30)
    checks = Checks()
    T = args.timeout

    def by_id(i):
        return driver.find_element(By.ID, i)

    def set_field(i, value):
        el = by_id(i)
        el.clear()
        if value != "":
            el.send_keys(value)
        el.send_keys(Keys.TAB)  # leaving the field fires "change", which saves the settings

    def assistants():
        return driver.find_elements(By.CSS_SELECTOR, "#log div.msg.assistant")

    def finished_reply(count):
        """The last assistant message once there are `count` and its stats are final."""
        msgs = assistants()
        if len(msgs) != count:
            return None
        m = msgs[-1]
        stats = m.find_element(By.CSS_SELECTOR, ".stats").text
        return m if "tokens/s" in stats else None

    def record_requests():
        # Wraps fetch so the test can read what the page sent to the server.
        driver.execute_script("""
            window.__bodies = [];
            const orig = window.fetch;
            window.fetch = (url, init) => {
              if (String(url).includes('/chat/completions')) window.__bodies.push(JSON.parse(init.body));
              return orig(url, init);
            };""")

    def reply_parts(m):
        text = m.find_element(By.CSS_SELECTOR, ".text").text
        stats = m.find_element(By.CSS_SELECTOR, ".stats").text
        return text, stats

    state = {}

    def opens():
        driver.get(base + "/")
        driver.execute_script("localStorage.clear()")
        driver.refresh()
        wait_for(lambda: by_id("model").text.startswith("· ") and "error" not in by_id("model").text.lower(),
                 T, "the model name to load")
        for i in ("prompt", "send", "stop", "regenerate", "clear", "temperature", "topP", "topK", "maxTokens",
                  "seed", "stopSeq", "truncate", "system", "apiKey", "log"):
            by_id(i)
        assert by_id("regenerate").get_attribute("disabled") is not None, "Regenerate is enabled with no conversation"
        assert by_id("stop").get_attribute("disabled") is not None, "Stop is enabled while idle"
    checks.run("page opens, model listed, controls present", opens)

    def send():
        set_field("temperature", "0")
        set_field("maxTokens", "40")
        set_field("seed", "42")
        set_field("topK", "20")
        set_field("stopSeq", "")
        record_requests()
        by_id("prompt").send_keys("What is virtue?")
        by_id("send").click()
        m = wait_for(lambda: finished_reply(1), T, "the first reply to finish")
        text, stats = reply_parts(m)
        assert text.strip(), f"empty reply (stats: {stats!r})"
        tokens = int(stats.split()[0])
        assert 0 < tokens <= 40, f"tokens in stats {stats!r} not in 1...40"
        body = driver.execute_script("return window.__bodies[0]")
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}, body
        assert body["seed"] == 42 and body["top_k"] == 20 and body["max_tokens"] == 40 and body["temperature"] == 0, body
        assert "stop" not in body, f"stop sent while the field is empty: {body}"
        assert body.get("truncate_prompt_tokens") == -1, f"long chats are not truncated by default: {body}"
        assert [x["role"] for x in body["messages"]] == ["user"], body["messages"]
        assert by_id("regenerate").get_attribute("disabled") is None, "Regenerate disabled after a reply"
        users = driver.find_elements(By.CSS_SELECTOR, "#log div.msg.user")
        assert len(users) == 1 and users[0].find_element(By.CSS_SELECTOR, ".text").text == "What is virtue?"
        state["first"] = text
        print(f"     reply: {text[:60]!r}… | {stats}", flush=True)
    checks.run("send streams a reply with per-reply stats; request carries the settings", send)

    def copy():
        button = assistants()[-1].find_element(By.CSS_SELECTOR, "button.copy")
        button.click()
        wait_for(lambda: button.text == "Copied", 5, "the Copy button to say Copied")
    checks.run("copy button copies", copy)

    def regenerate():
        driver.execute_script("document.querySelector('#log div.msg.assistant').dataset.old = '1'")
        by_id("regenerate").click()
        m = wait_for(lambda: (lambda r: r if r is not None and r.get_attribute("data-old") is None else None)(finished_reply(1)),
                     T, "the regenerated reply to finish")
        text, stats = reply_parts(m)
        assert text == state["first"], f"regenerated reply differs at temperature 0, seed 42:\n{state['first']!r}\n{text!r}"
        assert len(driver.find_elements(By.CSS_SELECTOR, "#log div.msg.user")) == 1, "the user message was duplicated"
        body = driver.execute_script("return window.__bodies[1]")
        assert [x["role"] for x in body["messages"]] == ["user"], f"regenerate sent the old reply along: {body['messages']}"
    checks.run("regenerate replaces the reply with the same text (temperature 0, seed 42)", regenerate)

    def second_turn():
        set_field("stopSeq", "zzz, \\n")
        set_field("system", "Answer briefly.")
        by_id("prompt").send_keys("And courage?")
        by_id("prompt").send_keys(Keys.ENTER)
        m = wait_for(lambda: finished_reply(2), T, "the second reply to finish")
        assert "\n" not in reply_parts(m)[0], "the reply went past a newline stop sequence"
        body = driver.execute_script("return window.__bodies[2]")
        assert body["stop"] == ["zzz", "\n"], body.get("stop")
        assert [x["role"] for x in body["messages"]] == ["system", "user", "assistant", "user"], body["messages"]
        driver.save_screenshot(os.path.join(args.screenshots, "playground.png"))
    checks.run("second turn: history, system message and stop sequences sent; screenshot", second_turn)

    def reload():
        before = [reply_parts(m) for m in assistants()]
        driver.refresh()
        wait_for(lambda: len(assistants()) == 2, 10, "the history to be re-rendered")
        after = [reply_parts(m) for m in assistants()]
        assert after == before, f"history changed over a reload:\n{before}\n{after}"
        users = [u.find_element(By.CSS_SELECTOR, ".text").text for u in driver.find_elements(By.CSS_SELECTOR, "#log div.msg.user")]
        assert users == ["What is virtue?", "And courage?"], users
        values = {i: by_id(i).get_attribute("value") for i in ("temperature", "maxTokens", "seed", "topK", "stopSeq", "system")}
        assert values == {"temperature": "0", "maxTokens": "40", "seed": "42", "topK": "20", "stopSeq": "zzz, \\n",
                          "system": "Answer briefly."}, f"settings not restored: {values}"
        assert by_id("truncate").is_selected(), "the truncate checkbox was not restored"
        assert by_id("regenerate").get_attribute("disabled") is None, "Regenerate disabled after a reload"
    checks.run("reload re-renders the history and restores the settings from localStorage", reload)

    def stop():
        set_field("maxTokens", "4000")
        set_field("stopSeq", "")
        # A fast model can finish 4,000 tokens before a click lands: the page's fetch gets
        # a body that passes on one chunk per 100 ms, so the reply is still streaming.
        driver.execute_script("""
            const original = window.fetch;
            window.fetch = async (...args) => {
              const response = await original(...args);
              if (!response.body) return response;
              const reader = response.body.getReader();
              const slow = new ReadableStream({
                async pull(controller) {
                  await new Promise((resolve) => setTimeout(resolve, 100));
                  const { value, done } = await reader.read();
                  if (done) controller.close(); else controller.enqueue(value);
                },
                cancel(reason) { return reader.cancel(reason); },
              });
              return new Response(slow, { status: response.status, headers: response.headers });
            };""")
        by_id("prompt").send_keys("Go on.")
        by_id("send").click()
        wait_for(lambda: len(assistants()) == 3 and assistants()[-1].find_element(By.CSS_SELECTOR, ".text").text,
                 T, "the third reply to start")
        by_id("stop").click()
        m = wait_for(lambda: finished_reply(3), 10, "the stopped reply's stats")
        text, stats = reply_parts(m)
        assert stats.endswith("stopped") and text, f"not stopped: {stats!r}"
        assert by_id("stop").get_attribute("disabled") is not None and by_id("send").get_attribute("disabled") is None
    checks.run("stop aborts a long reply and keeps what arrived", stop)

    def clear():
        by_id("clear").click()
        wait_for(lambda: by_id("log").get_attribute("innerHTML").strip() == "", 5, "the log to be empty")
        assert driver.execute_script("return JSON.parse(localStorage.getItem('slm-chat'))") == []
        driver.refresh()
        wait_for(lambda: by_id("model").text.startswith("· "), T, "the page to load again")
        assert by_id("log").get_attribute("innerHTML").strip() == "", "the log is not empty after Clear and a reload"
        assert by_id("regenerate").get_attribute("disabled") is not None, "Regenerate enabled after Clear"
    checks.run("clear empties the log and the stored history", clear)

    return conclude(checks, driver, "playground", args.screenshots, server, "server", ["playground.png"])


# --- dashboard ---------------------------------------------------------------------------

def dashboard(args):
    os.makedirs(args.screenshots, exist_ok=True)
    work = tempfile.mkdtemp(prefix="slm-dashboard-")
    micro, symbio = os.path.join(work, "micro"), os.path.join(work, "symbio")
    port = free_port()
    trainer = start_process([args.slm, "train", "--preset", "micro", "--data", args.data, "--out", micro,
                             "--steps", str(args.steps), "--eval-interval", str(args.steps // 4), "--sample", "0",
                             "--set", "training.log_interval=5", "--dashboard", "--dashboard-port", str(port)],
                            name="slm-train")
    base = f"http://{HOST}:{port}"
    wait_for_http(base + "/", trainer, timeout=args.timeout)
    print(f"dashboard up at {base} beside the training run (log: {trainer.log_path})", flush=True)
    driver = make_driver(width=1400, height=1000)
    checks = Checks()
    T = args.timeout

    def loss_points():
        """Points of each line in the loss chart, by series name."""
        return driver.execute_script("""
            const out = {};
            for (const l of document.querySelectorAll('#chart-loss polyline.series'))
              out[l.dataset.series] = l.getAttribute('points').trim().split(/\\s+/).length;
            return out;""")

    def opens():
        driver.get(base + "/")
        wait_for(lambda: loss_points().get("micro loss", 0) >= 2, T, "the loss curve to have two points")
    checks.run("the page opens during training and draws the loss curve", opens)

    def grows():
        before = loss_points()["micro loss"]
        wait_for(lambda: loss_points().get("micro loss", 0) > before, T, f"the loss curve to grow past {before} points")
        step = driver.find_element(By.CSS_SELECTOR, ".run[data-run='micro'] dd.step").text
        assert "/ " + str(args.steps) in step, step
        eta = driver.find_element(By.CSS_SELECTOR, ".run[data-run='micro'] dd.ETA").text
        assert eta not in ("", "–"), f"no ETA: {eta!r}"
    checks.run("the curve and the step/ETA figures update as the trainer logs", grows)

    def sample():
        text = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, ".run[data-run='micro'] .sample").text, T,
                        "the first evaluation's sample")
        assert len(text) > 8, text
        wait_for(lambda: loss_points().get("micro val_loss", 0) >= 1, T, "a validation point")
        driver.save_screenshot(os.path.join(args.screenshots, "dashboard-live.png"))
    checks.run("the latest sample and the validation loss appear", sample)

    def finished():
        wait_for(lambda: trainer.poll() is not None, max(T, 600), "the training run to end")
        assert trainer.returncode == 0, f"slm train exited with {trainer.returncode}"
        wait_for(lambda: "finished" in driver.find_element(By.CSS_SELECTOR, ".run[data-run='micro'] .state").text, T,
                 "the run to show as finished")
    checks.run("the run ends and the page says so", finished)

    def compare():
        proc = start_process([args.slm, "train", "--preset", "symbio-4m", "--data", args.data, "--out", symbio,
                              "--steps", "20", "--eval-interval", "10", "--sample", "0", "--set", "model.layers=2",
                              "--set", "model.width=64", "--set", "model.context=64", "--set", "model.ffn_width=128",
                              "--set", "training.batch=4", "--set", "training.eval_batches=2", "--set", "training.log_interval=2"],
                             name="slm-train-symbio")
        wait_for(lambda: proc.poll() is not None, max(T, 600), "the Symbio run to end")
        assert proc.returncode == 0, f"slm train (symbio) exited with {proc.returncode}\n{process_log(proc)}"
        second = free_port()
        board = start_process([args.slm, "dashboard", micro, symbio, "--port", str(second)], name="slm-dashboard")
        wait_for_http(f"http://{HOST}:{second}/", board, timeout=T)
        driver.get(f"http://{HOST}:{second}/")
        wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".run")) == 2, T, "two run cards")
        wait_for(lambda: {"micro loss", "symbio loss"} <= set(loss_points()), T, "loss lines for both runs")
        gates = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#chart-gates\\:symbio rect.gate"), T, "the Symbio gate chart")
        assert len(gates) == 2 * 3, f"{len(gates)} gate segments for 2 layers × 3 organelles"
        driver.save_screenshot(os.path.join(args.screenshots, "dashboard.png"))
    checks.run("slm dashboard compares two finished runs, with the Symbio gates", compare)

    return conclude(checks, driver, "dashboard", args.screenshots, trainer, "training", ["dashboard-live.png", "dashboard.png"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("playground", help="drive the chat page of `slm serve`")
    p.add_argument("--slm", required=True, help="path to the slm binary")
    p.add_argument("--model", required=True, help="checkpoint directory to serve")
    p.add_argument("--screenshots", default=".", help="where playground.png goes")
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for the server and each reply")
    p.set_defaults(run=playground)
    d = sub.add_parser("dashboard", help="drive `slm dashboard` during and after training")
    d.add_argument("--slm", required=True, help="path to the slm binary (a release build trains much faster)")
    d.add_argument("--data", required=True, help="a tokenized character data folder")
    d.add_argument("--steps", type=int, default=200, help="micro training steps (long enough to watch it update)")
    d.add_argument("--screenshots", default=".", help="where dashboard-live.png and dashboard.png go")
    d.add_argument("--timeout", type=float, default=120, help="seconds to wait for each change")
    d.set_defaults(run=dashboard)
    args = parser.parse_args()
    sys.exit(args.run(args))


if __name__ == "__main__":
    main()
