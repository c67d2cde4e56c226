"""Text for calibration and evaluation.

The default corpus is the English Wikipedia sample that the ``gensim`` package
ships in its test data (articles cleaned of wiki markup), so everything runs with
no network. Its articles are split once, deterministically: even-numbered
articles are the evaluation text, odd-numbered ones the calibration text, so a
method is never calibrated on the text it is scored on.

Users pass ``--text FILE`` for their own text, or ``--text wikitext-2`` where the
``datasets`` package and a network are available.
"""

from __future__ import annotations

import bz2
import importlib.util
import random
import re
from pathlib import Path
from typing import Any

from compress.errors import UserInputError
from compress.fsutil import atomic_write_text
from compress.paths import cache_dir

DEFAULT_TEXT = "default"
_WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_SPLITS = ("eval", "calibration")


def _wiki_articles() -> list[str]:
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError("the default text needs the package 'gensim': run `make setup`, or pass --text FILE")
    source = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data" / _WIKI_FILE
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    articles = []
    with bz2.open(source) as f:
        for _title, markup, _pageid in extract_pages(f, filter_namespaces=("0",)):
            text = filter_wiki(markup)
            if text.lstrip().lower().startswith("#redirect"):
                continue
            articles.append(_clean(text))
    return [a for a in articles if len(a) > 200]


def _clean(text: str) -> str:
    text = re.sub(r"'{2,}", "", text)  # bold and italic quotes
    text = re.sub(r"^=+\s*(.*?)\s*=+\s*$", r"\1", text, flags=re.M)  # headings
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def default_text(split: str = "eval") -> str:
    """The default corpus' ``eval`` or ``calibration`` half, cached as plain text."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    cached = cache_dir("corpus") / f"enwiki-sample-{split}.txt"
    if not cached.exists():
        articles = _wiki_articles()
        for name, start in zip(_SPLITS, (0, 1)):
            atomic_write_text(cache_dir("corpus") / f"enwiki-sample-{name}.txt", "\n\n".join(articles[start::2]))
    return cached.read_text(encoding="utf-8")


def load_text(text: str | None, split: str = "eval") -> tuple[str, str]:
    """Return ``(name, text)`` for a ``--text`` value: ``default``, a file, or ``wikitext-2``."""
    if not text or text == DEFAULT_TEXT:
        return f"enwiki-sample:{split}", default_text(split)
    if text == "wikitext-2":
        return "wikitext-2", _wikitext2(split)
    path = Path(text).expanduser()
    if not path.is_file():
        raise UserInputError(f"text {text!r} not found: expected a UTF-8 text file, 'default' or 'wikitext-2'")
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserInputError(f"{path} is not UTF-8 text: expected a plain text file") from None
    if len(content.strip()) < 100:
        raise UserInputError(f"{path} holds {len(content.strip())} characters: expected at least a paragraph of text")
    return path.name, content


def _wikitext2(split: str) -> str:
    try:
        import datasets

        rows = datasets.load_dataset("wikitext", "wikitext-2-raw-v1", split="test" if split == "eval" else "train")
    except Exception as err:  # offline or missing package: many exception types
        raise UserInputError(f"cannot load wikitext-2 ({type(err).__name__}): it needs a network; pass --text FILE") from None
    return "\n\n".join(rows["text"])


def token_ids(tokenizer: Any, text: str, max_tokens: int | None = None) -> list[int]:
    """The token stream of ``text`` with no special tokens, cut to ``max_tokens``.

    Tokenizing a whole corpus is slow for long texts, so only as many characters
    as could be needed are tokenized: English prose runs at about four characters
    per token with the usual BPE vocabularies, so eight characters a token leaves
    room; a byte-level tokenizer with no merges needs one.
    """
    if max_tokens is not None:
        text = text[: max_tokens * 8]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[:max_tokens] if max_tokens is not None else ids


def calibration_windows(tokenizer: Any, text: str, n_samples: int, seq_len: int, seed: int = 0) -> list[list[int]]:
    """``n_samples`` windows of ``seq_len`` tokens drawn at seeded random offsets."""
    # Four times the tokens drawn: windows overlap little, and the draw stays seeded.
    ids = token_ids(tokenizer, text, max_tokens=max(16_384, n_samples * seq_len * 4))
    if len(ids) < seq_len + 1:
        raise UserInputError(f"calibration text has {len(ids)} tokens: expected at least {seq_len + 1}; pass a longer --text")
    rng = random.Random(seed)
    starts = [rng.randrange(0, len(ids) - seq_len) for _ in range(n_samples)]
    return [ids[s : s + seq_len] for s in starts]
