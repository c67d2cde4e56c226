"""A Hugging Face tokenizer as the GGUF vocabulary llama.cpp tokenizes with.

Two kinds are read: byte-level BPE from ``tokenizer.json`` (llama.cpp's ``gpt2``
tokenizer model: tokens, token types, merges, and the name of the pre-tokenizer
whose split rules match the file's) and SentencePiece from ``tokenizer.model``
(llama.cpp's ``llama`` model: tokens, scores, types). Special token ids, whether
a BOS/EOS is added, and the chat template come along. The keys are the
``tokenizer.ggml.*`` ones of the GGUF spec (ggml-org/ggml docs/gguf.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.errors import UnsupportedError, UserInputError
from compress.pretokenizers import PRE_TOKENIZER_SPECS

# Token types of the GGUF spec (gguf.TokenType): kept as plain numbers so this table reads alone.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


@dataclass
class Vocab:
    """Everything a GGUF file says about its tokenizer."""

    model: str  # "gpt2" (byte-level BPE) or "llama" (SentencePiece)
    pre: str | None  # pre-tokenizer name, gpt2 only
    tokens: list[str]
    types: list[int]
    merges: list[str] = field(default_factory=list)
    scores: list[float] | None = None
    special_ids: dict[str, int] = field(default_factory=dict)  # bos/eos/pad/unk → id
    add_bos: bool = False
    add_eos: bool = False
    add_space_prefix: bool | None = None
    chat_template: str | None = None


def read_vocab(folder: Path, config: dict[str, Any], vocab_size: int) -> Vocab:
    """The vocabulary of the Hugging Face folder ``folder``, padded to the model's ``vocab_size`` rows."""
    folder = Path(folder)
    has_json, has_sp = (folder / "tokenizer.json").is_file(), (folder / "tokenizer.model").is_file()
    if not has_json and not has_sp:
        raise UserInputError(f"{folder} has no tokenizer.json or tokenizer.model: a GGUF carries its tokenizer, "
                             "so copy the model's tokenizer files into the folder")
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")) if has_json else {}
    signature = pre_tokenizer_signature(spec.get("pre_tokenizer"))
    if has_json and any(step.startswith("bytelevel") for step in signature):
        vocab = _bpe_vocab(spec, signature, vocab_size)
    elif has_sp:
        vocab = _sentencepiece_vocab(folder / "tokenizer.model", spec, vocab_size)
    else:
        raise UnsupportedError(f"{folder / 'tokenizer.json'} is neither byte-level BPE nor backed by a tokenizer.model: "
                               "expected a GPT-2-style or SentencePiece tokenizer")
    _add_special_tokens(vocab, folder, config)
    vocab.chat_template = _chat_template(folder)
    return vocab


def pre_tokenizer_signature(pre: dict[str, Any] | None) -> tuple[str, ...]:
    """The steps of a tokenizer.json ``pre_tokenizer`` as short strings, the keys of :data:`PRE_TOKENIZERS`."""
    if not pre:
        return ()
    steps = pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]
    signature = []
    for step in steps:
        kind = step["type"]
        if kind == "ByteLevel":
            name = "bytelevel+regex" if step.get("use_regex", True) else "bytelevel"
            signature.append(name + ("+prefix" if step.get("add_prefix_space") else ""))
        elif kind == "Digits":
            signature.append("digits" if step.get("individual_digits") else "digit-runs")
        elif kind == "Split":
            pattern = step["pattern"]
            signature.append("split:" + pattern.get("Regex", pattern.get("String", "")))
        else:
            signature.append(kind.lower())
    return tuple(signature)


#: The steps of a tokenizer.json pre-tokenizer → llama.cpp's name for the same splitting.
PRE_TOKENIZERS = {pre_tokenizer_signature(spec): name for name, spec in PRE_TOKENIZER_SPECS.items()}


def _bpe_vocab(spec: dict[str, Any], signature: tuple[str, ...], vocab_size: int) -> Vocab:
    model = spec["model"]
    if model["type"] != "BPE":
        raise UnsupportedError(f"tokenizer.json holds a {model['type']} model with a byte-level pre-tokenizer: expected BPE")
    pre = PRE_TOKENIZERS.get(signature)
    if pre is None:
        raise UnsupportedError(
            f"tokenizer.json pre-tokenizer {list(signature)} matches none llama.cpp is known to split alike here "
            f"(supported: {', '.join(PRE_TOKENIZERS.values())}): convert this model with llama.cpp's own script"
        )
    by_id = {index: token for token, index in model["vocab"].items()}
    types = {index: NORMAL for index in by_id}
    for added in spec.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        types[added["id"]] = CONTROL if added.get("special") else USER_DEFINED
    tokens, token_types = _padded(by_id, types, vocab_size)
    # Newer tokenizer.json files store a merge as a pair, older ones as "left right".
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return Vocab("gpt2", pre, tokens, token_types, merges=merges)


def _sentencepiece_vocab(path: Path, spec: dict[str, Any], vocab_size: int) -> Vocab:
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    by_id, types, scores = {}, {}, {}
    for index in range(processor.vocab_size()):
        by_id[index] = processor.id_to_piece(index)
        scores[index] = processor.get_score(index)
        types[index] = (UNKNOWN if processor.is_unknown(index) else CONTROL if processor.is_control(index)
                        else UNUSED if processor.is_unused(index) else BYTE if processor.is_byte(index) else NORMAL)
    for added in spec.get("added_tokens", []):
        if added["id"] not in by_id:
            by_id[added["id"]] = added["content"]
            types[added["id"]] = CONTROL if added.get("special") else USER_DEFINED
            scores[added["id"]] = -1000.0  # never chosen by merging; matched whole
    tokens, token_types = _padded(by_id, types, vocab_size)
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(path.read_bytes())
    return Vocab("llama", None, tokens, token_types, scores=[scores.get(i, -1000.0) for i in range(len(tokens))],
                 add_space_prefix=proto.normalizer_spec.add_dummy_prefix)


def _padded(by_id: dict[int, str], types: dict[int, int], vocab_size: int) -> tuple[list[str], list[int]]:
    """Token strings and types for every embedding row; rows the tokenizer never emits get an unused filler
    (llama.cpp needs one token per row of the embedding matrix)."""
    top = max(by_id) + 1
    if top > vocab_size:
        raise UnsupportedError(f"the tokenizer has ids up to {top - 1} but the model has {vocab_size} embedding rows: "
                               "expected a tokenizer that fits the model")
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(vocab_size)]
    token_types = [types.get(i, UNUSED) for i in range(vocab_size)]
    return tokens, token_types


def _add_special_tokens(vocab: Vocab, folder: Path, config: dict[str, Any]) -> None:
    """Special ids, and whether the tokenizer adds BOS/EOS, as the Hugging Face tokenizer itself does it.

    The EOS comes first from generation_config.json, then config.json: those name the token
    generation stops on, which a tokenizer_config.json does not always agree with.
    """
    from compress.loading import load_tokenizer

    tokenizer = load_tokenizer(folder)
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    vocab.add_bos = len(full) > len(plain) and full[0] != plain[0]
    vocab.add_eos = len(full) > len(plain) and full[-1] != plain[-1]
    generation = folder / "generation_config.json"
    generation_config = json.loads(generation.read_text()) if generation.is_file() else {}
    candidates = {
        "bos": [full[0] if vocab.add_bos else None, config.get("bos_token_id"), tokenizer.bos_token_id],
        "eos": [generation_config.get("eos_token_id"), config.get("eos_token_id"), tokenizer.eos_token_id],
        "pad": [config.get("pad_token_id"), tokenizer.pad_token_id],
        "unk": [tokenizer.unk_token_id, config.get("unk_token_id")],
    }
    for name, values in candidates.items():
        for value in values:
            value = value[0] if isinstance(value, list) and value else value
            if isinstance(value, int) and 0 <= value < len(vocab.tokens):
                vocab.special_ids[name] = value
                break


def _chat_template(folder: Path) -> str | None:
    """transformers 5 keeps the template in chat_template.jinja; older folders in tokenizer_config.json."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config_file = folder / "tokenizer_config.json"
    template = json.loads(config_file.read_text()).get("chat_template") if config_file.is_file() else None
    if isinstance(template, list):  # named templates: the default one is what a plain chat uses
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return template


def write_vocab(writer: Any, vocab: Vocab) -> None:
    """Add the ``tokenizer.ggml.*`` keys of ``vocab`` to a ``gguf.GGUFWriter``."""
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    if vocab.merges:
        writer.add_token_merges(vocab.merges)
    setters = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id,
               "pad": writer.add_pad_token_id, "unk": writer.add_unk_token_id}
    for name, index in vocab.special_ids.items():
        setters[name](index)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
