#!/usr/bin/env python3
"""The PyTorch reference for swift-slm.

  check   --model CKPT [--data DIR] [--hf]   loss and logits of swift-slm vs this reference (and
                                             vs transformers on `slm export`) on the same batch
  fixture --out DIR                          tiny models + expected logits (and, for Monarch and
                                             Symbio, gradients) for the Swift tests
  inspect --fixtures DIR                     for each tiny model there, what `slm inspect` shows on its
                                             first input row (surprisal, attention probabilities, Monarch
                                             matrices, gates), written to inspect.json beside it
  train   --model-config JSON --data DIR …   train the same model in PyTorch: loss vs wall clock,
                                             tokens/s, peak RSS (for docs/BENCHMARKS.md)

Needs torch (CPU) and safetensors; `check --hf` also needs transformers.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402


def windows(data_dir, split, rows, time_steps, seed):
    meta = json.load(open(f"{data_dir}/meta.json"))
    ids = np.memmap(f"{data_dir}/{split}.bin", dtype=np.uint16 if meta["dtype"] == "uint16" else np.uint32, mode="r")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(ids) - time_steps - 1, rows)
    block = np.stack([np.asarray(ids[s:s + time_steps + 1], dtype=np.int64) for s in starts])
    return torch.from_numpy(block[:, :-1]), torch.from_numpy(block[:, 1:])


def slm(binary, *args):
    return subprocess.run([binary, *args], check=True, capture_output=True, text=True).stdout


def check(a):
    model, config = models.load(a.model)
    model.eval()
    T = min(a.time or config["context"], config["context"])
    if a.data:
        x, y = windows(a.data, "val", a.rows, T, a.seed)
    else:
        g = torch.Generator().manual_seed(a.seed)
        x = torch.randint(0, config["vocab_size"], (a.rows, T), generator=g)
        y = torch.randint(0, config["vocab_size"], (a.rows, T), generator=g)
    tmp = tempfile.mkdtemp()
    batch = f"{tmp}/batch.json"
    json.dump({"inputs": x.tolist(), "targets": y.tolist()}, open(batch, "w"))
    out = json.loads(slm(a.slm, "score", "--model", a.model, "--batch", batch, "--logits", f"{tmp}/logits.bin", "--json"))
    ours = torch.from_numpy(np.fromfile(f"{tmp}/logits.bin", dtype="<f4")).view(a.rows, T, -1)
    with torch.no_grad():
        ref = model(x)
        ref_loss = torch.nn.functional.cross_entropy(ref.reshape(-1, ref.shape[-1]), y.reshape(-1)).item()
    dl, dlogit = abs(out["loss"] - ref_loss), (ours - ref).abs().max().item()
    ok = dl < 1e-4
    print(f"{config['architecture']} {os.path.basename(os.path.normpath(a.model))}: swift-slm loss {out['loss']:.6f}, "
          f"PyTorch reference {ref_loss:.6f}, |Δloss| {dl:.2e}, max |Δlogit| {dlogit:.2e} over {a.rows}×{T} tokens: "
          f"{'OK' if ok else 'MISMATCH'}")
    if a.hf:
        from transformers import AutoModelForCausalLM
        export = f"{tmp}/hf"
        slm(a.slm, "export", "--model", a.model, "--format", "hf", "--out", export)
        hf = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32)
        hf.eval()
        with torch.no_grad():
            hl = hf(x).logits
        hl_loss = torch.nn.functional.cross_entropy(hl.reshape(-1, hl.shape[-1]), y.reshape(-1)).item()
        dh = (ours - hl).abs().max().item()
        hf_ok = abs(hl_loss - out["loss"]) < 1e-4
        print(f"  transformers {type(hf).__name__} from `slm export`: loss {hl_loss:.6f}, max |Δlogit| vs swift-slm {dh:.2e}: "
              f"{'OK' if hf_ok else 'MISMATCH'}")
        ok = ok and hf_ok
    return 0 if ok else 1


def fixture(a):
    """Tiny models with large random weights, their logits on a fixed batch, and the loss."""
    os.makedirs(a.out, exist_ok=True)
    configs = {
        "tiny-gpt2": dict(architecture="gpt2", vocab_size=13, layers=2, heads=2, kv_heads=2, width=16, context=8,
                          ffn_width=24, norm_eps=1e-5, rope_theta=10000.0, bias=True, tied_embeddings=False, dropout=0.0),
        "tiny-llama": dict(architecture="llama", vocab_size=13, layers=2, heads=4, kv_heads=2, width=16, context=8,
                           ffn_width=24, norm_eps=1e-6, rope_theta=100.0, bias=False, tied_embeddings=True, dropout=0.0),
        # Context 9: blocks of p = 3; two Monarch heads of 8 channels.
        "tiny-monarch": dict(architecture="monarch", vocab_size=13, layers=2, heads=2, kv_heads=2, width=16, context=9,
                             ffn_width=24, norm_eps=1e-6, rope_theta=10000.0, bias=False, tied_embeddings=True, dropout=0.0),
        "tiny-symbio": dict(architecture="symbio", vocab_size=13, layers=2, heads=2, kv_heads=2, width=16, context=9,
                            ffn_width=24, norm_eps=1e-6, rope_theta=10000.0, bias=False, tied_embeddings=True, dropout=0.0),
        # BitNet b1.58: ternary BitLinears and SubLN norms (last, so the others draw the same numbers).
        "tiny-bitnet": dict(architecture="llama", vocab_size=13, layers=2, heads=4, kv_heads=2, width=16, context=8,
                            ffn_width=24, norm_eps=1e-6, rope_theta=100.0, bias=False, tied_embeddings=True, dropout=0.0,
                            quantization="ternary", sub_norm=True),
    }
    # For the mixer models, a few gradients of the loss too.
    gradients = {"llama": ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight",
                           "model.layers.1.mlp.ffn_sub_norm.weight", "model.embed_tokens.weight"],
                 "monarch": ["model.layers.0.mixer.monarch.L1", "model.layers.0.mixer.monarch.L2",
                             "model.layers.1.mixer.conv.weight", "model.layers.1.mixer.gate"],
                 "symbio": ["model.layers.0.mixer.monarch.L2", "model.layers.0.mixer.long_conv.weight",
                            "model.layers.1.mixer.conv.weight", "model.layers.1.mixer.gate_logits"]}
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(7)
    for name, config in configs.items():
        model = models.build(config)
        with torch.no_grad():
            for n in model.names:
                model.p[n].copy_(torch.randn(model.p[n].shape, generator=g) * (0.3 if "weight" in n else 0.1)
                                 + (1.0 if "norm" in n or "ln_" in n else 0.0))
        directory = f"{a.out}/{name}"
        os.makedirs(directory, exist_ok=True)
        json.dump(config, open(f"{directory}/config.json", "w"), indent=2, sort_keys=True)
        save_file({n: model.p[n].detach().contiguous() for n in model.names}, f"{directory}/model.safetensors",
                  metadata={"format": "pt"})
        T = config["context"]
        x = torch.randint(0, 13, (2, T), generator=g)
        y = torch.randint(0, 13, (2, T), generator=g)
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 13), y.reshape(-1))
        expected = {"inputs": x.tolist(), "targets": y.tolist(),
                    "logits": [round(v, 7) for v in logits.detach().reshape(-1).tolist()], "loss": loss.item()}
        if config["architecture"] in gradients and (config["architecture"] != "llama" or config.get("quantization")):
            loss.backward()
            expected["gradients"] = {n: [round(v, 8) for v in model.p[n].grad.reshape(-1).tolist()]
                                     for n in gradients[config["architecture"]]}
        loss = loss.item()
        json.dump(expected, open(f"{directory}/expected.json", "w"))
        print(f"wrote {directory}: loss {loss:.6f}")


def train(a):
    config = json.load(open(a.model_config))
    meta = json.load(open(f"{a.data}/meta.json"))
    config["vocab_size"] = meta["vocab_size"]
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    model = models.build(config)
    decay = [p for n, p in zip(model.names, model._params) if p.dim() >= 2]
    no_decay = [p for n, p in zip(model.names, model._params) if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    step_fn = torch.compile(model) if a.compile else model
    T = config["context"]
    ids = np.memmap(f"{a.data}/train.bin", dtype=np.uint16 if meta["dtype"] == "uint16" else np.uint32, mode="r")
    rng = np.random.default_rng(a.seed)

    def lr_at(step):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        progress = min(1.0, (step - a.warmup) / max(1, a.steps - 1 - a.warmup))
        return a.min_lr + (a.lr - a.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    def evaluate():
        model.eval()
        x, y = windows(a.data, "val", a.batch * a.eval_batches, T, a.seed ^ 0xE7A1)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            total = sum(model.loss(x[i * a.batch:(i + 1) * a.batch], y[i * a.batch:(i + 1) * a.batch]).item()
                        for i in range(a.eval_batches))
        model.train()
        return total / a.eval_batches

    records, start, timed = [], time.time(), []
    for step in range(a.steps):
        t0 = time.time()
        starts = rng.integers(0, len(ids) - T - 1, a.batch)
        block = torch.from_numpy(np.stack([np.asarray(ids[s:s + T + 1], dtype=np.int64) for s in starts]))
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            logits = step_fn(block[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), block[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= 3:
            timed.append(time.time() - t0)
        if (step + 1) % a.eval_interval == 0 or step + 1 == a.steps:
            v = evaluate()
            records.append({"step": step + 1, "val_loss": v, "elapsed": time.time() - start})
            print(f"step {step + 1}: train loss {loss.item():.4f}, val loss {v:.4f}, {time.time() - start:.1f} s", flush=True)
    ms = 1000 * float(np.median(timed)) if timed else float("nan")
    summary = {"ms_per_step": ms, "tokens_per_sec": a.batch * T / (ms / 1000), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "evals": records, "precision": a.precision, "compile": a.compile, "threads": a.threads}
    print(json.dumps(summary))
    if a.out:
        json.dump(summary, open(a.out, "w"), indent=2)


def inspect(a):
    """Attention probabilities are recomputed explicitly (softmax of q·kᵀ/√d, causal mask)
    from the q and k that the reference passes to scaled_dot_product_attention."""
    recorded = []
    original = models.F.scaled_dot_product_attention

    def recording(q, k, v, is_causal=False, enable_gqa=False, **kw):
        keys = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1) if enable_gqa else k
        T = q.shape[2]
        scores = (q @ keys.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        recorded.append(torch.softmax(scores.double(), -1)[0])
        return original(q, k, v, is_causal=is_causal, enable_gqa=enable_gqa, **kw)

    for name in ["tiny-gpt2", "tiny-llama", "tiny-monarch", "tiny-symbio"]:
        directory = os.path.join(a.fixtures, name)
        model, config = models.load(directory)
        ids = json.load(open(os.path.join(directory, "expected.json")))["inputs"][0]
        recorded.clear()
        models.F.scaled_dot_product_attention = recording
        try:
            with torch.no_grad():
                logits = model(torch.tensor([ids]))[0].double()
        finally:
            models.F.scaled_dot_product_attention = original
        logp = torch.log_softmax(logits, -1)
        out = {"ids": ids, "surprisal_bits": [None] + [(-logp[t - 1, ids[t]] / math.log(2)).item() for t in range(1, len(ids))],
               "attention": [[[round(x, 8) for x in h.reshape(-1).tolist()] for h in layer] for layer in recorded]}
        T, p = len(ids), model.p
        if config["architecture"] in ("monarch", "symbio"):
            out["monarch"] = []
            for i in range(config["layers"]):
                L1, L2 = p[f"model.layers.{i}.mixer.monarch.L1"].double(), p[f"model.layers.{i}.mixer.monarch.L2"].double()
                out["monarch"].append([[round(x, 8) for x in models.monarch_matrix(L1[h], L2[h])[:T, :T].reshape(-1).tolist()]
                                       for h in range(L1.shape[0])])
            if config["architecture"] == "symbio":
                out["gates"] = [torch.softmax(p[f"model.layers.{i}.mixer.gate_logits"].double(), 0).tolist() for i in range(config["layers"])]
            else:
                out["gates"] = [[torch.sigmoid(p[f"model.layers.{i}.mixer.gate"].double()).tolist()] for i in range(config["layers"])]
        json.dump(out, open(os.path.join(directory, "inspect.json"), "w"))
        print(f"wrote {directory}/inspect.json")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check")
    c.add_argument("--model", required=True)
    c.add_argument("--data")
    c.add_argument("--rows", type=int, default=4)
    c.add_argument("--time", type=int)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--hf", action="store_true")
    c.add_argument("--slm", default=".build/release/slm")
    f = sub.add_parser("fixture")
    f.add_argument("--out", required=True)
    i = sub.add_parser("inspect")
    i.add_argument("--fixtures", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../Tests/SLMModelsTests/Fixtures"))
    t = sub.add_parser("train")
    t.add_argument("--model-config", required=True, help="a swift-slm config.json (vocab_size is taken from the data)")
    t.add_argument("--data", required=True)
    t.add_argument("--steps", type=int, default=200)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--min-lr", type=float, default=1e-4)
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--weight-decay", type=float, default=0.1)
    t.add_argument("--eval-interval", type=int, default=250)
    t.add_argument("--eval-batches", type=int, default=20)
    t.add_argument("--seed", type=int, default=1337)
    t.add_argument("--threads", type=int, default=os.cpu_count())
    t.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    t.add_argument("--compile", action="store_true")
    t.add_argument("--out")
    a = p.parse_args()
    sys.exit({"check": check, "fixture": fixture, "inspect": inspect, "train": train}[a.command](a) or 0)


if __name__ == "__main__":
    main()
