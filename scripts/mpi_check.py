#!/usr/bin/env python3
"""Data-parallel training over MPI equals one process with the combined batch.

    python3 scripts/mpi_check.py --slm .build/release/slm --data runs/data-micro

Trains a tiny character GPT-2 with dropout 0.1 for 20 steps three ways, each with one
thread per process:
  one     one process, batch 8
  mpi     `mpirun -np 2`, the same global batch of 8 (4 rows per rank), gradients sent in
          buckets of 64 KiB during the backward pass
  resume  one process for 10 steps, then resumed under `mpirun -np 2` to step 20, gradients
          sent in one sum after the backward pass
and checks, against `one`: the loss at every step (relative difference within 1e-5) and
the final weights (each tensor's difference within 1e-4 of its norm). Then the data-centric
methods together, one process against 2 ranks: windows drawn by chunk on a difficulty
curriculum, a sequence-length warm-up, distillation and online DoReMi (the `one` run as
teacher and reference). With --wire bf16
it compares the loss curve of bf16 gradients on the wire instead (reported, not asserted).
Needs OpenMPI (scripts/setup.sh --with-mpi). Runs as root with --allow-run-as-root.
"""
import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

MODEL = ["--preset", "micro", "--set", "model.bias=false", "--set", "model.layers=2", "--set", "model.width=64", "--set", "model.heads=2",
         "--set", "model.context=64", "--set", "model.dropout=0.1", "--set", "training.batch=8",
         "--set", "training.log_interval=1", "--set", "training.warmup=2", "--set", "training.learning_rate=2e-3",
         "--set", "training.min_learning_rate=2e-3", "--set", "training.eval_batches=2", "--eval-interval", "10",
         "--sample", "0", "--eval-sample", "0", "--precision", "fp32"]  # the tolerances are fp32's


def mpirun(ranks):
    """As root, on one machine, over shared memory (no single-copy mechanism: containers forbid it);
    SLM_NUM_THREADS passed on to the ranks."""
    return ["mpirun", "-np", str(ranks), "--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
            "--mca", "btl", "self,vader", "--mca", "btl_vader_single_copy_mechanism", "none", "-x", "SLM_NUM_THREADS"]


def run(args, env_threads=True):
    env = dict(os.environ, SLM_NUM_THREADS="1") if env_threads else None
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(args)} exited with {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout + p.stderr


def losses(run_dir):
    out = {}
    for line in open(os.path.join(run_dir, "metrics.jsonl")):
        r = json.loads(line)
        if "loss" in r:
            out[r["step"]] = r["loss"]
    return out


def tensors(path):
    """name → list of floats, from a safetensors file of F32 tensors."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = struct.unpack(f"<{(b - a) // 4}f", blob[a:b])
    return out


def compare(reference, other, label, strict=True):
    la, lb = losses(reference), losses(other)
    assert sorted(la) == sorted(lb) == list(range(1, 21)), (sorted(la), sorted(lb))
    worst = max(abs(la[s] - lb[s]) / abs(la[s]) for s in la)
    wa = tensors(os.path.join(reference, "ckpt-000020", "model.safetensors"))
    wb = tensors(os.path.join(other, "ckpt-000020", "model.safetensors"))
    assert wa.keys() == wb.keys()
    ratios = {}
    for name in wa:
        norm = math.sqrt(sum(x * x for x in wa[name]))
        diff = math.sqrt(sum((x - y) ** 2 for x, y in zip(wa[name], wb[name])))
        ratios[name] = diff / max(norm, 1e-30)
    ranked = sorted(ratios.items(), key=lambda kv: -kv[1])
    name, ratio = ranked[0]
    print(f"{label}: worst relative loss difference {worst:.2e} over 20 steps; largest weight differences, "
          f"relative to the tensor's norm: " + ", ".join(f"{n} {r:.1e}" for n, r in ranked[:3]))
    if strict:
        assert worst <= 1e-5, f"{label}: loss differs by {worst:.2e} (relative) from one process"
        assert ratio <= 1e-4, f"{label}: {name} differs by {ratio:.2e} of its norm"
    for s in (1, 10, 20):
        print(f"  step {s:2d}: one process {la[s]:.6f}, {label} {lb[s]:.6f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slm", default=".build/release/slm")
    p.add_argument("--data", required=True, help="a tokenized character data folder")
    p.add_argument("--wire", choices=["fp32", "bf16"], default="fp32")
    a = p.parse_args()
    if not shutil.which("mpirun"):
        sys.exit("FAIL: mpirun not found; install OpenMPI (scripts/setup.sh --with-mpi)")
    work = tempfile.mkdtemp(prefix="slm-mpi-")
    try:
        one, mpi, resumed = (os.path.join(work, n) for n in ("one", "mpi", "resume"))
        train = [a.slm, "train", "--data", a.data] + MODEL
        run(train + ["--out", one, "--steps", "20"])
        run(mpirun(2) + train + ["--out", mpi, "--steps", "20", "--allreduce", a.wire, "--allreduce-bucket-mb", "0.0625"])
        if a.wire == "bf16":
            compare(one, mpi, "2 ranks, bf16 on the wire", strict=False)
            return
        compare(one, mpi, "2 ranks, buckets during backward")
        run(train + ["--out", resumed, "--steps", "10"])
        log = run(mpirun(2) + train + ["--out", resumed, "--steps", "20", "--resume", resumed, "--allreduce-bucket-mb", "0"])
        assert "resuming" in log, log
        compare(one, resumed, "1 process to step 10, then 2 ranks, one sum after backward")
        helper = os.path.join(one, "ckpt-000020")
        methods = ["--set", 'training.sampler="chunks"', "--set", 'training.curriculum="difficulty"',
                   "--set", "training.seq_warmup=8", "--set", "training.seq_start=16",
                   "--teacher", helper, "--set", f'training.doremi.reference="{helper}"']
        one_m, mpi_m = os.path.join(work, "one-methods"), os.path.join(work, "mpi-methods")
        run(train + methods + ["--out", one_m, "--steps", "20"])
        run(mpirun(2) + train + methods + ["--out", mpi_m, "--steps", "20"])
        compare(one_m, mpi_m, "2 ranks, data-centric methods")
        logged = set().union(*(json.loads(line) for line in open(os.path.join(mpi_m, "metrics.jsonl"))))
        missing = {"distill_kl", "domain_weights", "seq_len", "curriculum_reach"} - logged
        assert not missing, f"2 ranks, data-centric methods: the metrics lack {sorted(missing)}, so a method did not run"
        print("PASS mpi: 2 ranks equal one process with the combined batch, also across a resume and with the data-centric methods")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
