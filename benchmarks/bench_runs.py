"""What the benchmark scripts that train series of runs share: running `slm` with its
output kept, and writing a result table between markers in docs/BENCHMARKS.md."""
import os
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def sh(cmd, log=None):
    """Runs cmd (its output also into `log`); exits with its tail on failure. Returns (stdout, seconds)."""
    started = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if log:
        with open(log, "w") as f:
            f.write(p.stdout + p.stderr)
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout, time.time() - started


def write_table(table, marker):
    """Replaces the text between <!-- MARKER:begin --> and <!-- MARKER:end --> in docs/BENCHMARKS.md."""
    path = os.path.join(ROOT, "docs/BENCHMARKS.md")
    text = open(path).read()
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    if begin not in text or end not in text:
        sys.exit(f"{path} has no {begin} … {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    open(path, "w").write(head + begin + "\n" + table + "\n" + end + tail)
