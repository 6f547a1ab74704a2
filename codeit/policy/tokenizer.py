"""A tokenizer made for DSL programs and the sparse grid encoding, plus hub-tokenizer support.

The DSL tokenizer is built deterministically from the DSL registry (no download, no training):

* every primitive, constant, variable name (``x1`` ... ``x99``, ``I``, ``O``) is one token, and so
  are the separators of program text — ``" = "`` (with its spaces), ``"(", ")"``, ``", "`` (comma and
  space) and the newline — so a program line ``x3 = fill(x2, ONE, x1)`` is 10 tokens and decoding
  (plain concatenation) gives back exactly its text;
* the grid encoding (:mod:`codeit.encoding`) tokenises compactly: numbers ``0``-``99``, ``x``,
  ``" background="``, ``|``, colour prefixes ``" c="`` and coordinate pairs ``i,j`` / ``" i,j"`` (0-29,
  with or without the separating space) are single tokens, so a grid header costs five tokens and
  each foreground cell one;
* every other printable ASCII character is a token of its own, so any ASCII text encodes losslessly;
  anything else maps to ``<unk>``.

It is a ``tokenizers`` ``Tokenizer`` (regex pre-tokenizer, word-level model, fusing decoder, ``</s>``
appended by the post-processor) wrapped as a ``transformers`` ``PreTrainedTokenizerFast``, so
``save_pretrained``/``from_pretrained`` work as for any Hugging Face tokenizer.

Published models (CodeT5 and friends) keep their own tokenizer (:func:`load_tokenizer` with a hub name
or a local path); :func:`program_token_ids` then derives the ids a program can contain from the
tokenisation of DSL text, for constrained decoding.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, UNK)

#: separators of program text, each one token
PROGRAM_PUNCTUATION = (" = ", "(", ")", ", ", "\n")
#: variable names a program may assign, besides ``O``
MAX_VARIABLE = 99
VARIABLES = ("I", "O") + tuple(f"x{i}" for i in range(1, MAX_VARIABLE + 1))
#: largest grid coordinate with a pair token (ARC grids are at most 30x30)
MAX_COORDINATE = 29
GRID_WORDS = (" background=", "background=", "x", "|", "=", " ", "\n") + tuple(f" {c}=" for c in range(10))

#: marker key written to tokenizer_config.json by :func:`build_dsl_tokenizer`
MARKER = "codeit_dsl_tokenizer"
#: names accepted by :func:`load_tokenizer` for the built DSL tokenizer
DSL_TOKENIZER_NAMES = ("dsl", "codeit-dsl")


def dsl_names() -> tuple[list[str], list[str]]:
    """Primitive names and constant names in registry order."""
    import codeit.dsl  # noqa: F401  (registers every primitive)
    from codeit.dsl.constants import CONSTANTS
    from codeit.dsl.registry import PRIMITIVES

    return list(PRIMITIVES), list(CONSTANTS)


def program_vocabulary(primitives: list[str] | None = None, constants: list[str] | None = None) -> list[str]:
    """Every token that can appear in program text, in a fixed order (punctuation, variables, names)."""
    if primitives is None or constants is None:
        p, c = dsl_names()
        primitives = p if primitives is None else primitives
        constants = c if constants is None else constants
    out: list[str] = []
    for token in (*PROGRAM_PUNCTUATION, *VARIABLES, *primitives, *constants):
        if token not in out:
            out.append(token)
    return out


def dsl_vocabulary(primitives: list[str] | None = None, constants: list[str] | None = None) -> list[str]:
    """The whole vocabulary in id order: special tokens, program tokens, grid tokens, ASCII fallback."""
    vocab: list[str] = list(SPECIAL_TOKENS)
    seen = set(vocab)

    def add(token: str) -> None:
        if token not in seen:
            seen.add(token)
            vocab.append(token)

    for token in program_vocabulary(primitives, constants):
        add(token)
    for token in GRID_WORDS:
        add(token)
    for n in range(100):
        add(str(n))
    for i in range(MAX_COORDINATE + 1):
        for j in range(MAX_COORDINATE + 1):
            add(f"{i},{j}")
            add(f" {i},{j}")
    for code in range(32, 127):
        add(chr(code))
    add("\t")
    return vocab


def _pre_tokenizer_pattern(names: list[str]) -> str:
    """One regex whose leftmost-first alternatives cut text into vocabulary words.

    Known names only match as whole identifiers (not preceded or followed by an identifier character),
    so ``3x3`` is ``3``, ``x``, ``3`` and an unknown identifier falls back to single characters.
    """
    words = sorted(set(names), key=lambda s: (-len(s), s))
    name_alt = "|".join(re.escape(w) for w in words)
    coord = r"(?:1\d|2\d|\d)"
    return (
        r" = |, | ?background=| [0-9]=(?=[0-9])"
        rf"|(?<![A-Za-z0-9_])(?:{name_alt})(?![A-Za-z0-9_])"
        rf"| ?{coord},{coord}(?![0-9])"
        r"|[1-9]\d|\d"
        r"|\n|."
    )


def build_dsl_tokenizer(primitives: list[str] | None = None,
                        constants: list[str] | None = None) -> PreTrainedTokenizerFast:
    """Build the DSL tokenizer from the registry (or from the given name lists)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    if primitives is None or constants is None:
        p, c = dsl_names()
        primitives = p if primitives is None else primitives
        constants = c if constants is None else constants
    vocab = dsl_vocabulary(primitives, constants)
    token_to_id = {t: i for i, t in enumerate(vocab)}
    core = Tokenizer(models.WordLevel(vocab=token_to_id, unk_token=UNK))
    identifiers = [t for t in program_vocabulary(primitives, constants) if t[0].isalpha()]
    core.pre_tokenizer = pre_tokenizers.Split(Regex(_pre_tokenizer_pattern(identifiers)), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, token_to_id[EOS])])
    core.add_special_tokens(list(SPECIAL_TOKENS))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, eos_token=EOS, unk_token=UNK,
        clean_up_tokenization_spaces=False, model_max_length=1_000_000, padding_side="right")
    tok.init_kwargs[MARKER] = True
    tok.init_kwargs["codeit_program_vocabulary_size"] = len(program_vocabulary(primitives, constants))
    return tok


@lru_cache(maxsize=1)
def _cached_dsl_tokenizer() -> PreTrainedTokenizerFast:
    return build_dsl_tokenizer()


def dsl_tokenizer() -> PreTrainedTokenizerFast:
    """The registry's DSL tokenizer (built once per process; treat it as read-only)."""
    return _cached_dsl_tokenizer()


def is_dsl_tokenizer(tokenizer) -> bool:
    return bool(getattr(tokenizer, "init_kwargs", {}).get(MARKER))


def _is_dsl_tokenizer_dir(path: Path) -> bool:
    config = path / "tokenizer_config.json"
    if not config.is_file():
        return False
    try:
        return bool(json.loads(config.read_text()).get(MARKER))
    except (OSError, ValueError):
        return False


def load_tokenizer(name_or_path: str | os.PathLike | None = None):
    """The tokenizer for ``name_or_path``.

    ``None``/``"dsl"`` build the DSL tokenizer; a directory written by ``save_pretrained`` of a DSL
    tokenizer loads it back; anything else (a hub name such as ``Salesforce/codet5p-220m`` or a local
    model directory) goes to ``AutoTokenizer.from_pretrained``.
    """
    if name_or_path is None or str(name_or_path) in DSL_TOKENIZER_NAMES:
        return build_dsl_tokenizer()
    path = Path(name_or_path)
    if path.is_dir() and _is_dsl_tokenizer_dir(path):
        tok = PreTrainedTokenizerFast.from_pretrained(str(path))
        tok.init_kwargs[MARKER] = True
        return tok
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(name_or_path))


#: the DSL pre-tokenizer restricted to grid text (no identifiers): one match per token
_GRID_TOKEN = re.compile(r" ?(?:1\d|2\d|\d),(?:1\d|2\d|\d)(?![0-9])| [0-9]=(?=[0-9])| ?background=|[1-9]\d|\d|\n|.",
                         re.DOTALL)


def count_grid_tokens(text: str) -> int:
    """The DSL tokenizer's token count (no special tokens) of grid-encoding text, without tokenising.

    Exact for text made by :mod:`codeit.encoding` (grids, ``|`` and newlines: no identifiers), and
    several times faster than calling the tokenizer, which matters when 100,000 tasks are encoded with
    their sides capped by token count.
    """
    return len(_GRID_TOKEN.findall(text))


def grid_token_counter(tokenizer):
    """What :func:`codeit.encoding.encode_task` should count tokens with for ``tokenizer``: the fast
    :func:`count_grid_tokens` for the DSL tokenizer, the tokenizer itself otherwise."""
    return count_grid_tokens if is_dsl_tokenizer(tokenizer) else tokenizer


def _dsl_sample_texts(primitives: list[str], constants: list[str]) -> list[str]:
    """Program-like text that puts every DSL name in every syntactic position it can take."""
    variables = list(VARIABLES[2:])
    lines: list[str] = []
    for k, name in enumerate(primitives):
        v = variables[k % len(variables)]
        a = variables[(k + 7) % len(variables)]
        lines.append(f"{v} = {name}(I)")
        lines.append(f"{v} = {name}({a}, I)")
        lines.append(f"{v} = {a}({name}, {name})")
        lines.append(f"{v} = {a}(I, {name}, {a})")
        lines.append(f"O = {name}({a})")
    for k, name in enumerate(list(constants) + variables + ["I"]):
        v = variables[(k + 3) % len(variables)]
        lines.append(f"{v} = rbind({name}, {name})")
        lines.append(f"{v} = fill(I, {name})")
        lines.append(f"{v} = fill({name}, I, {name})")
        lines.append(f"{name} = identity({v})")
        lines.append(f"O = {v}({name})")
    texts = []
    chunk = 12
    for start in range(0, len(lines), chunk):
        texts.append("\n".join(lines[start:start + chunk]))
    texts.extend(lines)
    return texts


def program_token_ids(tokenizer, primitives: list[str] | None = None,
                      constants: list[str] | None = None) -> list[int]:
    """Sorted ids of every token that can appear in a generated program, plus EOS, pad and any special
    token the tokenizer adds to a target.

    For the DSL tokenizer that is exactly the program vocabulary.  For any other tokenizer it is every
    id produced when tokenising program text that uses every primitive, constant and variable in every
    position (callee, first/middle/last argument, assigned variable, start of a line).
    """
    if primitives is None or constants is None:
        p, c = dsl_names()
        primitives = p if primitives is None else primitives
        constants = c if constants is None else constants
    ids: set[int] = set()
    if is_dsl_tokenizer(tokenizer):
        vocab = tokenizer.get_vocab()
        for token in program_vocabulary(primitives, constants):
            if token in vocab:
                ids.add(vocab[token])
    else:
        for text in _dsl_sample_texts(primitives, constants):
            ids.update(tokenizer(text, add_special_tokens=False)["input_ids"])
        # special tokens the tokenizer adds around a target (e.g. CodeT5's <s>): training targets hold
        # them, so decoding must be allowed to produce them too
        ids.update(tokenizer("O = identity(I)")["input_ids"])
    for special in (tokenizer.eos_token_id, tokenizer.pad_token_id):
        if special is not None:
            ids.add(int(special))
    return sorted(ids)
