#!/usr/bin/env python3
"""1 process × 2 threads against 2 MPI processes × 1 thread on the same cores, interleaved.

    python3 benchmarks/mpi_bench.py --data runs/data-micro [--preset char-10m] [--rounds 3] [--steps 16]
                                    [--buckets 0,4]

Prints tokens/s per run (median of the log windows after the first) and, for the MPI runs,
seconds per step that a step waits for the all-reduces after its backward pass (waiting
for the slower rank included). One MPI configuration per bucket size in MiB
(`--allreduce-bucket-mb`; 0: one sum after the backward pass, no overlap), and one with
bf16 on the wire at the default bucket size.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from mpi_check import mpirun  # noqa: E402  (the same mpirun line as the CI check)


def run(cmd, out, env):
    subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, **env))
    records = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    windows = [r for r in records if "tokens_per_sec" in r][1:]
    rate = statistics.median(r["tokens_per_sec"] for r in windows)
    comm = [r["allreduce_seconds"] for r in windows if "allreduce_seconds" in r]
    return rate, (statistics.median(comm) if comm else None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slm", default=".build/release/slm")
    p.add_argument("--data", required=True)
    p.add_argument("--preset", default="char-10m")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--buckets", default="0,4", help="bucket sizes in MiB for the MPI runs, comma-separated")
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="slm-mpi-bench-")
    train = ["train", "--preset", a.preset, "--data", a.data, "--steps", str(a.steps), "--eval-interval", "100000",
             "--set", "training.log_interval=4", "--set", "training.eval_batches=1", "--sample", "0", "--eval-sample", "0", "--precision", "fp32"]
    configs = {"1 process x 2 threads": ([a.slm] + train, {"SLM_NUM_THREADS": "2"})}
    for mb in a.buckets.split(","):
        configs[f"2 processes x 1 thread, buckets {mb} MiB"] = (mpirun(2) + [a.slm] + train + ["--allreduce-bucket-mb", mb],
                                                                 {"SLM_NUM_THREADS": "1"})
    configs["2 processes x 1 thread, bf16 wire"] = (mpirun(2) + [a.slm] + train + ["--allreduce", "bf16"], {"SLM_NUM_THREADS": "1"})
    results = {name: [] for name in configs}
    try:
        for r in range(a.rounds):
            for name, (cmd, env) in configs.items():
                out = os.path.join(work, f"{r}-{list(configs).index(name)}")
                rate, comm = run(cmd + ["--out", out], out, env)
                results[name].append((rate, comm))
                print(f"round {r + 1} {name}: {rate:.0f} tokens/s" + (f", all-reduce {comm * 1000:.1f} ms/step" if comm is not None else ""),
                      flush=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(x[0] for x in results["1 process x 2 threads"])
    for name, runs in results.items():
        rates = [x[0] for x in runs]
        comms = [x[1] for x in runs if x[1] is not None]
        print(f"{name}: median {statistics.median(rates):.0f} tokens/s (best {max(rates):.0f}), "
              f"{statistics.median(rates) / base:.2f}x" + (f", all-reduce median {statistics.median(comms) * 1000:.1f} ms/step" if comms else ""))


if __name__ == "__main__":
    main()
