#!/usr/bin/env python3
"""Checks a GGUF file written by `slm export --format gguf` with llama.cpp's own pure-Python
reader (the `gguf` package): its metadata against the checkpoint's config.json, every
tensor against model.safetensors (dequantised; Q/K rows in llama.cpp's RoPE order,
computed here with llama.cpp's converter's formula), and the vocabulary against
tokenizer.json.

    python3 scripts/gguf_check.py --model CHECKPOINT_DIR --gguf FILE.gguf
"""
import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize


def read_safetensors(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: {info['dtype']}"
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + start:8 + n + end], dtype=np.float32).reshape(info["shape"])
    return out


def rope_permute(w, heads):
    # llama.cpp's converter: rotate-half rows (HF Llama) to adjacent pairs.
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    if f.types[0] == GGUFValueType.ARRAY:
        if f.types[-1] == GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    if f.types[0] == GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]][0].item()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--gguf", required=True)
    args = ap.parse_args()
    model = Path(args.model)
    config = json.loads((model / "config.json").read_text())
    weights = read_safetensors(model / "model.safetensors")
    reader = GGUFReader(args.gguf)
    failures = []
    checks = 0

    def expect(ok, what):
        nonlocal checks
        checks += 1
        if not ok:
            failures.append(what)

    expect(field(reader, "general.architecture") == "llama", "general.architecture")
    heads, kv_heads, width = config["heads"], config["kv_heads"], config["width"]
    head_size = width // heads
    expected = {
        "llama.context_length": config["context"], "llama.embedding_length": width,
        "llama.block_count": config["layers"], "llama.feed_forward_length": config["ffn_width"],
        "llama.attention.head_count": heads, "llama.attention.head_count_kv": kv_heads,
        "llama.rope.dimension_count": head_size,
    }
    for key, value in expected.items():
        expect(field(reader, key) == value, f"{key}: {field(reader, key)} != {value}")
    expect(abs(field(reader, "llama.rope.freq_base") - config["rope_theta"]) < 1e-3, "rope.freq_base")
    expect(abs(field(reader, "llama.attention.layer_norm_rms_epsilon") - config["norm_eps"]) < 1e-9, "rms epsilon")

    # Tensors: names, shapes and values (Q8_0 within half a step of its block's scale).
    names = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}
    if not config.get("tied_embeddings", True):
        names["output.weight"] = "lm_head.weight"
    for i in range(config["layers"]):
        n = f"model.layers.{i}."
        names |= {f"blk.{i}.attn_norm.weight": n + "input_layernorm.weight",
                  f"blk.{i}.attn_q.weight": n + "self_attn.q_proj.weight",
                  f"blk.{i}.attn_k.weight": n + "self_attn.k_proj.weight",
                  f"blk.{i}.attn_v.weight": n + "self_attn.v_proj.weight",
                  f"blk.{i}.attn_output.weight": n + "self_attn.o_proj.weight",
                  f"blk.{i}.ffn_norm.weight": n + "post_attention_layernorm.weight",
                  f"blk.{i}.ffn_gate.weight": n + "mlp.gate_proj.weight",
                  f"blk.{i}.ffn_up.weight": n + "mlp.up_proj.weight",
                  f"blk.{i}.ffn_down.weight": n + "mlp.down_proj.weight"}
    tensors = {t.name: t for t in reader.tensors}
    expect(set(tensors) == set(names), f"tensor names: extra {set(tensors) - set(names)}, missing {set(names) - set(tensors)}")
    worst = 0.0
    for gname, sname in names.items():
        t = tensors.get(gname)
        if t is None:
            continue
        source = weights[sname]
        if gname.endswith("attn_q.weight"):
            source = rope_permute(source, heads)
        elif gname.endswith("attn_k.weight"):
            source = rope_permute(source, kv_heads)
        values = dequantize(t.data, t.tensor_type).reshape(source.shape)
        expect(list(reversed([int(d) for d in t.shape])) == list(source.shape), f"{gname}: shape {list(t.shape)}")
        error = float(np.max(np.abs(values - source)))
        if t.tensor_type.name == "Q8_0":
            step = np.abs(source.reshape(-1, 32)).max(axis=1) / 127
            ok = np.all(np.abs(values - source).reshape(-1, 32) <= step[:, None] * (0.5 + 127 / 2048) + 1e-7)
        elif t.tensor_type.name == "F16":
            ok = np.all(np.abs(values - source) <= np.abs(source) / 1024 + 1e-7)
        else:
            ok = error == 0
        expect(ok, f"{gname} ({t.tensor_type.name}): max error {error}")
        worst = max(worst, error)

    # Vocabulary: the tokenizer's tokens in order, merges, and explicit BOS/EOS.
    tokens = field(reader, "tokenizer.ggml.tokens")
    expect(field(reader, "tokenizer.ggml.model") == "gpt2", "tokenizer.ggml.model")
    expect(len(tokens) == config["vocab_size"], f"{len(tokens)} tokens")
    tokenizer_json = model / "tokenizer.json"
    if tokenizer_json.exists():
        tok = json.loads(tokenizer_json.read_text())
        for text, i in tok["model"]["vocab"].items():
            expect(tokens[i] == text, f"token {i}: {tokens[i]!r} != {text!r}")
        merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
        expect(field(reader, "tokenizer.ggml.merges") == merges, "merges")
        eot = next(a["id"] for a in tok["added_tokens"] if a["content"] == "<|endoftext|>")
        expect(field(reader, "tokenizer.ggml.eos_token_id") == eot, "eos_token_id")
        expect(field(reader, "tokenizer.ggml.bos_token_id") == eot, "bos_token_id")
        expect(field(reader, "tokenizer.ggml.token_type")[eot] == 3, "<|endoftext|> is a control token")

    for f in failures:
        print("gguf_check: FAILED", f)
    print(f"gguf_check: {args.gguf}: {len(reader.tensors)} tensors, largest difference {worst:.3g}; "
          f"{checks - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
