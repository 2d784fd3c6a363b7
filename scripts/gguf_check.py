#!/usr/bin/env python3
"""Checks a GGUF file written by `slm export --format gguf` with llama.cpp's own pure-Python
reader (the `gguf` package): its metadata against the checkpoint's config.json, every
tensor against model.safetensors (dequantised; for llama, Q/K rows in llama.cpp's RoPE
order, computed here with llama.cpp's converter's formula; for gpt2, Conv1D weights
transposed; for ternary models, block matrices as the model computes with them, {-s, 0, s}),
and the vocabulary against tokenizer.json (byte-level BPE models).

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


def ternary(w):
    # BitNet b1.58's absmean quantiser, as the model computes with its block matrices.
    s = max(float(np.abs(w).mean()), 1e-5)
    return (np.clip(np.round(w / np.float32(s)), -1, 1) * np.float32(s)).astype(np.float32)


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

    arch = config["architecture"]
    expect(field(reader, "general.architecture") == arch, "general.architecture")
    heads, width = config["heads"], config["width"]
    expected = {f"{arch}.context_length": config["context"], f"{arch}.embedding_length": width,
                f"{arch}.block_count": config["layers"], f"{arch}.feed_forward_length": config["ffn_width"],
                f"{arch}.attention.head_count": heads}
    # name in the file → (name in the checkpoint, how its values are arranged there)
    names = {"token_embd.weight": ("model.embed_tokens.weight" if arch == "llama" else "transformer.wte.weight", None)}
    if arch == "llama":
        kv_heads = config["kv_heads"]
        expected |= {"llama.attention.head_count_kv": kv_heads, "llama.rope.dimension_count": width // heads}
        expect(abs(field(reader, "llama.rope.freq_base") - config["rope_theta"]) < 1e-3, "rope.freq_base")
        expect(abs(field(reader, "llama.attention.layer_norm_rms_epsilon") - config["norm_eps"]) < 1e-9, "rms epsilon")
        names["output_norm.weight"] = ("model.norm.weight", None)
        for i in range(config["layers"]):
            n, b = f"model.layers.{i}.", f"blk.{i}."
            names |= {b + "attn_norm.weight": (n + "input_layernorm.weight", None),
                      b + "attn_q.weight": (n + "self_attn.q_proj.weight", ("rope", heads)),
                      b + "attn_k.weight": (n + "self_attn.k_proj.weight", ("rope", kv_heads)),
                      b + "attn_v.weight": (n + "self_attn.v_proj.weight", None),
                      b + "attn_output.weight": (n + "self_attn.o_proj.weight", None),
                      b + "ffn_norm.weight": (n + "post_attention_layernorm.weight", None),
                      b + "ffn_gate.weight": (n + "mlp.gate_proj.weight", None),
                      b + "ffn_up.weight": (n + "mlp.up_proj.weight", None),
                      b + "ffn_down.weight": (n + "mlp.down_proj.weight", None)}
    elif arch == "gpt2":
        expect(abs(field(reader, "gpt2.attention.layer_norm_epsilon") - config["norm_eps"]) < 1e-9, "layer norm epsilon")
        names |= {"position_embd.weight": ("transformer.wpe.weight", None),
                  "output_norm.weight": ("transformer.ln_f.weight", None), "output_norm.bias": ("transformer.ln_f.bias", None)}
        for i in range(config["layers"]):
            n, b = f"transformer.h.{i}.", f"blk.{i}."
            for g, hf, matrix in [("attn_norm", "ln_1", False), ("attn_qkv", "attn.c_attn", True), ("attn_output", "attn.c_proj", True),
                                  ("ffn_norm", "ln_2", False), ("ffn_up", "mlp.c_fc", True), ("ffn_down", "mlp.c_proj", True)]:
                names[b + g + ".weight"] = (n + hf + ".weight", "transpose" if matrix else None)
                names[b + g + ".bias"] = (n + hf + ".bias", None)
    else:
        sys.exit(f"gguf_check: no GGUF layout to check for {arch}")
    for key, value in expected.items():
        expect(field(reader, key) == value, f"{key}: {field(reader, key)} != {value}")
    if not config.get("tied_embeddings", arch == "llama"):
        names["output.weight"] = ("lm_head.weight", None)

    # Tensors: names, shapes and values (Q8_0 within half a step of its block's scale).
    tensors = {t.name: t for t in reader.tensors}
    expect(set(tensors) == set(names), f"tensor names: extra {set(tensors) - set(names)}, missing {set(names) - set(tensors)}")
    worst = 0.0
    for gname, (sname, arrangement) in names.items():
        t = tensors.get(gname)
        if t is None:
            continue
        source = weights[sname]
        if config.get("quantization") == "ternary" and sname.startswith("model.layers.") and sname.endswith("_proj.weight"):
            source = ternary(source)
        if arrangement == "transpose":  # GPT-2's Conv1D [in, out]
            source = np.ascontiguousarray(source.T)
        elif arrangement is not None:
            source = rope_permute(source, arrangement[1])
        values = dequantize(t.data, t.tensor_type).reshape(source.shape)
        expect(list(reversed([int(d) for d in t.shape])) == list(source.shape), f"{gname}: shape {list(t.shape)}")
        error = float(np.max(np.abs(values - source)))
        if t.tensor_type.name == "Q8_0":
            step = np.abs(source.reshape(-1, 32)).max(axis=1) / 127
            ok = np.all(np.abs(values - source).reshape(-1, 32) <= step[:, None] * (0.5 + 127 / 2048) + 1e-7)
        elif t.tensor_type.name == "TQ2_0":  # {-s, 0, s} exactly, s rounded to f16
            ok = np.all(np.abs(values - source) <= np.abs(source) / 1024 + 1e-7)
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
