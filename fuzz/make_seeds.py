#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/: small valid inputs for every slm-fuzz target.

    python3 fuzz/make_seeds.py

The seeds are committed; rerun this only to change them. The regression test
(Tests/SLMFuzzTargetsTests) checks that every seed is still accepted.
"""
import json
import shutil
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent


def write(target, name, data):
    folder = ROOT / "seeds" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)


def requests():
    chat = [
        {"model": "fuzz", "messages": [{"role": "user", "content": "Hello"}]},
        {"model": "fuzz", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is virtue?"},
                                        {"role": "assistant", "content": "Knowledge."}, {"role": "user", "content": "Why?"}],
         "max_tokens": 32, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "n": 2, "seed": 7, "stop": ["\n", "."],
         "stream": True, "stream_options": {"include_usage": True}, "presence_penalty": 0.5, "frequency_penalty": -0.5},
        {"model": "fuzz", "messages": [{"role": "developer", "content": [{"type": "text", "text": "parts"}]}],
         "logprobs": True, "top_logprobs": 3, "max_completion_tokens": 8, "min_p": 0.05, "repetition_penalty": 1.1,
         "truncate_prompt_tokens": -1},
    ]
    completion = [
        {"model": "fuzz", "prompt": "Socrates: "},
        {"model": "fuzz", "prompt": "The", "max_tokens": 16, "temperature": 0, "logprobs": 2, "n": 3, "stop": "\n",
         "stream": True, "seed": -1, "truncate_prompt_tokens": 12},
        {"model": "fuzz", "prompt": "x" * 300, "top_k": 0, "min_p": 0.1, "echo": False},
    ]
    for i, body in enumerate(chat):
        write("chat-request", f"seed-{i}.json", json.dumps(body))
    for i, body in enumerate(completion):
        write("completion-request", f"seed-{i}.json", json.dumps(body))


def tokenizer():
    (ROOT / "seeds/tokenizer-json").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Tests/SLMTextTests/Fixtures/hf_bpe_tokenizer.json", ROOT / "seeds/tokenizer-json/hf-bpe.json")
    hf = REPO / "Tests/SLMGenerateTests/Fixtures/transformers"
    shutil.copy(hf / "llama-bf16-sharded/tokenizer.json", ROOT / "seeds/tokenizer-json/llama2-bpe.json")
    shutil.copy(hf / "tokenizer-metaspace.json", ROOT / "seeds/tokenizer-json/metaspace-bpe.json")


def safetensors():
    def file(entries, metadata=None):
        header, blob = {}, b""
        for name, dtype, shape, payload in entries:
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(payload)]}
            blob += payload
        if metadata:
            header["__metadata__"] = metadata
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        return struct.pack("<Q", len(text)) + text + blob

    write("safetensors", "f32.safetensors", file([("w", "F32", [2, 3], struct.pack("<6f", *range(6))),
                                                  ("b", "F32", [3], struct.pack("<3f", 0.5, -1, 2))], {"format": "pt"}))
    write("safetensors", "half.safetensors", file([("h", "F16", [4], struct.pack("<4e", 1, 2, -3, 0.25)),
                                                   ("g", "BF16", [2, 1], bytes([0x80, 0x3F, 0x00, 0xC0]))]))
    write("safetensors", "scalar.safetensors", file([("s", "F32", [], struct.pack("<f", 3.0)), ("e", "F32", [0, 4], b"")]))


def configs():
    # As checkpoints write them: every key present.
    common = {"vocab_size": 64, "layers": 2, "heads": 2, "kv_heads": 2, "width": 32, "context": 16, "ffn_width": 96,
              "norm_eps": 1e-5, "rope_theta": 10000, "bias": False, "tied_embeddings": True, "dropout": 0}
    variants = {
        "gpt2": {"architecture": "gpt2", "bias": True, "tied_embeddings": False, "ffn_width": 128, "dropout": 0.1},
        "llama": {"architecture": "llama", "kv_heads": 1},
        "llama-moe": {"architecture": "llama", "experts": 4, "experts_active": 2},
        "monarch": {"architecture": "monarch"},
        "symbio": {"architecture": "symbio"},
    }
    for name, extra in variants.items():
        write("model-config", f"{name}.json", json.dumps({**common, **extra}, indent=2, sort_keys=True))
    # transformers' config.json, as save_pretrained writes it.
    hf = REPO / "Tests/SLMGenerateTests/Fixtures/transformers"
    for name in ("gpt2-fp16", "llama-bf16-sharded"):
        write("model-config", f"hf-{name}.json", (hf / name / "config.json").read_bytes())


def presets():
    for toml in sorted((REPO / "presets").glob("*.toml")):
        write("preset", toml.name, toml.read_bytes())


def token_files():
    meta16 = {"tokenizer": "char", "charset": "micro", "vocab_size": 30, "dtype": "uint16", "separator": 0,
              "train_tokens": 40, "val_tokens": 24, "train_chars": 40, "val_chars": 24}
    meta32 = {**meta16, "tokenizer": "byte-bpe", "vocab_size": 300, "dtype": "uint32"}
    del meta32["charset"]
    for name, meta, fmt, top in [("uint16", meta16, "<H", 30), ("uint32", meta32, "<I", 300)]:
        text = json.dumps(meta).encode()
        ids = b"".join(struct.pack(fmt, (7 * i) % top) for i in range(40))
        write("token-files", f"{name}.bin", struct.pack("<H", len(text)) + text + ids)


if __name__ == "__main__":
    requests()
    tokenizer()
    safetensors()
    configs()
    presets()
    token_files()
    print("seeds written to", ROOT / "seeds")
