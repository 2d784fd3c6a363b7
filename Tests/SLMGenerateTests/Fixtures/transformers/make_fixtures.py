#!/usr/bin/env python3
"""Regenerates the transformers-folder fixtures that `slm` must load (issue 13, part 2).

    pip install torch transformers tokenizers
    python3 Tests/SLMGenerateTests/Fixtures/transformers/make_fixtures.py

Writes two folders with `save_pretrained`, next to this script:
  gpt2-fp16/         GPT2LMHeadModel, tied head, weights stored in float16 (one
                     model.safetensors), a byte-level BPE tokenizer.json (GPT-2's form)
  llama-bf16-sharded/ LlamaForCausalLM, grouped-query attention (4 heads, 2 kv heads),
                     untied head, weights stored in bfloat16 in two shards with
                     model.safetensors.index.json, a Llama-2-style tokenizer.json (BPE with
                     byte_fallback, Prepend + Replace normalizer, <s> added by the
                     post-processor)
and tokenizer-metaspace.json: the same Llama vocabulary in the newer form (no
normalizer, a Metaspace pre-tokenizer with prepend_scheme "first").

Each folder's expected.json holds what transformers and tokenizers compute: the ids of
the probe texts (with the special tokens the post-processor adds), the float32 logits of
the model loaded back from the folder for one sequence, and its greedy continuation.
The Swift tests need neither Python nor these packages: they read the files.
"""
import json
import os

import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))

TRAINING_TEXT = """\
The lighthouse keeper counted the ships that passed each evening.
She wrote their names in a small book: the Marigold, the Heron, the Quiet Star.
On stormy nights the lamp turned slowly, and the keeper did not sleep at all.
"We will see the morning," she said, "and we have seen worse than this."
The harbour held 12 boats in 1999 and 365 boats by 2024.
Socrates asked what justice is, and Thrasymachus answered that it is the advantage of the stronger.
Euclid began with points, lines and circles, and built the whole of geometry upon them.
The lamp turned, the ships passed, the keeper wrote, the book grew.
""" * 3

PROBES = [
    "The lighthouse keeper counted the ships.",
    "Hello world",
    "  leading spaces and trailing spaces  ",
    "multiple    spaces",
    "line one\nline two\n",
    "café crème brûlée",
    "emoji 🙂 and 日本語",
    "it's the keeper's book",
    "",
    " ",
    "<s>the lamp</s> turned",
]


def train_byte_level():
    tok = tokenizers.ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train_from_iterator([TRAINING_TEXT], vocab_size=420, min_frequency=2,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    return Tokenizer.from_str(tok.to_str())


def train_llama_style():
    """A Llama-2-style tokenizer: <unk> <s> </s>, the 256 <0xNN> byte tokens, then merges."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    # Trained on ▁-words, as SentencePiece does; the saved file, like Llama 2's, has none.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tok.train_from_iterator([TRAINING_TEXT], trainers.BpeTrainer(vocab_size=360, min_frequency=2, show_progress=False))
    spec = json.loads(tok.to_str())
    trained = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for token, _ in trained:
        vocab.setdefault(token, len(vocab))
    spec["model"].update(vocab=vocab, byte_fallback=True, fuse_unk=True, unk_token="<unk>")
    spec["pre_tokenizer"] = None
    spec["added_tokens"] = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for i, t in enumerate(["<unk>", "<s>", "</s>"])]
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


def metaspace_form(tok):
    spec = json.loads(tok.to_str())
    spec["normalizer"] = None
    spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    spec["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    return Tokenizer.from_str(json.dumps(spec))


def write_folder(name, model, tok, dtype, shard_size, extra_tokenizer_config):
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    for f in os.listdir(folder):
        os.remove(os.path.join(folder, f))
    model.to(dtype).save_pretrained(folder, max_shard_size=shard_size, safe_serialization=True)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **extra_tokenizer_config)
    fast.save_pretrained(folder)
    if os.path.exists(os.path.join(folder, "generation_config.json")):
        os.remove(os.path.join(folder, "generation_config.json"))  # greedy decoding is asked for explicitly

    # What transformers computes from the folder as saved (bf16/fp16 weights widened to float32).
    back = transformers.AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    loaded_tok = transformers.AutoTokenizer.from_pretrained(folder)
    cases = [{"text": t, "ids": loaded_tok(t)["input_ids"]} for t in PROBES]
    sequence = loaded_tok("The keeper counted the ships")["input_ids"]
    with torch.no_grad():
        logits = back(torch.tensor([sequence])).logits[0]
        generated = back.generate(torch.tensor([sequence]), max_new_tokens=12, do_sample=False,
                                  pad_token_id=0)[0].tolist()[len(sequence):]
    expected = {
        "transformers_version": transformers.__version__, "tokenizers_version": tokenizers.__version__,
        "cases": cases, "sequence": sequence, "logits": [[round(v, 6) for v in row] for row in logits.tolist()],
        "greedy": generated,
    }
    with open(os.path.join(folder, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
    return loaded_tok


def main():
    torch.manual_seed(0)
    byte_tok = train_byte_level()
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=byte_tok.get_vocab_size(), n_positions=64, n_embd=32, n_layer=2, n_head=4,
        initializer_range=0.2, bos_token_id=0, eos_token_id=0))
    write_folder("gpt2-fp16", gpt2, byte_tok, torch.float16, "10MB",
                 {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"})

    llama_tok = train_llama_style()
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=llama_tok.get_vocab_size(), hidden_size=32, intermediate_size=88, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5,
        rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.2, bos_token_id=1, eos_token_id=2))
    write_folder("llama-bf16-sharded", llama, llama_tok, torch.bfloat16, "40KB",
                 {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})

    meta = metaspace_form(llama_tok)
    meta.save(os.path.join(HERE, "tokenizer-metaspace.json"), pretty=True)
    with open(os.path.join(HERE, "tokenizer-metaspace-expected.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": [{"text": t, "ids": meta.encode(t).ids} for t in PROBES]}, f, ensure_ascii=False, indent=0)
    print(f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}: written under {HERE}")


if __name__ == "__main__":
    main()
