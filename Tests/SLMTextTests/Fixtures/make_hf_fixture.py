#!/usr/bin/env python3
"""Regenerates the Hugging Face compatibility fixtures for SLMTextTests.

    pip install tokenizers
    python3 Tests/SLMTextTests/Fixtures/make_hf_fixture.py

Writes, next to this script:
  hf_bpe_training.txt   the training text below
  hf_bpe_tokenizer.json a ByteLevel BPE (vocab 400, add_prefix_space False, special
                        token <|endoftext|>) trained on it by `tokenizers`
  hf_bpe_expected.json  the ids `tokenizers` gives for the probe strings below, as
                        trained and with the pre-tokenizer's add_prefix_space on

The Swift tests need neither Python nor `tokenizers`: they read these files.
"""
import json
import os

import tokenizers
from tokenizers import ByteLevelBPETokenizer, Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))

TRAINING_TEXT = """\
The lighthouse keeper counted the ships that passed each evening.
She wrote their names in a small book: the Marigold, the Heron, the Quiet Star.
On stormy nights the lamp turned slowly, and the keeper didn't sleep at all.
"We'll see the morning," she said, "and we've seen worse than this."
The harbour held 12 boats in 1999, 24 boats in 2009, and 365 boats by 2024.
Prices rose from $3.50 to $7.25; nobody complained -- or at least, nobody important.
    Indented lines keep their spaces.
Tabs\tseparate\tthese\twords, and    runs   of spaces   sit   between   others.

A café in Zürich served crème brûlée to a naïve señor from São Paulo.
Ελληνικά γράμματα και русские буквы appear together here.
日本語の文章と中文句子也在这里。 한국어 문장도 있습니다.
Emoji travel well: 🙂 🚀 🌍 and the keeper's cat 🐈 liked the lamp.
She'd counted the ships, she'd counted the stars, and she'll count them again.
It's the keeper's book; it's her book; it's nobody else's book.
Numbers: 3.14159, 2.71828, 1,000,000 and 42!!! Punctuation?!... (yes) [no] {maybe}
email@example.com https://example.org/path?query=1&x=2 #hashtag @mention
The lighthouse keeper counted the ships that passed each evening.
The lighthouse keeper counted the stars that rose each evening.
The lamp turned, the ships passed, the keeper wrote, the book grew.
"""

PROBES = [
    "The lighthouse keeper counted the ships.",
    "Hello world",
    "  leading spaces and trailing spaces  ",
    "multiple    spaces    between words",
    "line one\nline two\n\nline four after a blank line\n",
    "tabs\tand\ttabs \t mixed",
    "it's, she'd, we'll, they've, I'm, you're, don't",
    "'sun 'S 'LL ''s",
    "Numbers 12345 and 3.14159 and 1,000,000",
    "Punctuation!!! ...?! (nested [brackets]) {braces}",
    "café crème brûlée naïve Zürich São Paulo",
    "Ελληνικά και русские буквы",
    "日本語の文章と中文句子",
    "한국어 문장",
    "emoji 🙂🚀 and 🐈 cats",
    "text<|endoftext|>more text",
    "<|endoftext|>",
    "before <|endoftext|> after<|endoftext|><|endoftext|>",
    "",
    " ",
    "\n\n\n",
    "trailing newline\n",
    "mixed\r\nwindows\r\nline endings",
    "email@example.com https://example.org/path?query=1&x=2",
    "unknownwordsxyzqv and ZZZZ",
    "\u00a0non-breaking\u00a0space and\u2003em space",
    "A\u0301 combining accent and e\u0301",
]


def main():
    training_path = os.path.join(HERE, "hf_bpe_training.txt")
    with open(training_path, "w", encoding="utf-8", newline="") as f:
        f.write(TRAINING_TEXT)

    tokenizer = ByteLevelBPETokenizer(add_prefix_space=False)
    tokenizer.train(
        [training_path],
        vocab_size=400,
        min_frequency=2,
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tokenizer.save(os.path.join(HERE, "hf_bpe_tokenizer.json"), pretty=True)

    cases = [{"text": text, "ids": tokenizer.encode(text).ids} for text in PROBES]

    # The same tokenizer with the pre-tokenizer's add_prefix_space switched on.
    spec = json.loads(tokenizer.to_str())
    spec["pre_tokenizer"]["add_prefix_space"] = True
    prefixed = Tokenizer.from_str(json.dumps(spec))
    prefix_cases = [{"text": text, "ids": prefixed.encode(text).ids} for text in PROBES]

    with open(os.path.join(HERE, "hf_bpe_expected.json"), "w", encoding="utf-8") as f:
        # One case per line: small, and diffs stay readable.
        f.write('{"tokenizers_version": %s,\n' % json.dumps(tokenizers.__version__))
        for key, items in [("cases", cases), ("add_prefix_space_cases", prefix_cases)]:
            f.write('"%s": [\n' % key)
            f.write(",\n".join(json.dumps(case, ensure_ascii=False) for case in items))
            f.write("\n]" + ("," if key == "cases" else "") + "\n")
        f.write("}\n")
    print(f"tokenizers {tokenizers.__version__}: vocabulary {tokenizer.get_vocab_size()}, {len(cases)} cases")


if __name__ == "__main__":
    main()
