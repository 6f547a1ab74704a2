"""Batched, constrained sampling of programs from the seq2seq policy, and parsing of the results.

* Inputs are tokenised once (truncated to ``max_input_tokens``), sorted by length (longest first, so
  a batch that runs out of memory does so at once) and grouped so that each batch decodes at most
  ``batch_sequences`` sequences (``n`` per input).  The encoder runs once per input; the decoder uses
  the KV cache.  The default decoder (``pruned``) drops finished sequences from the batch and the
  cache as it goes, so a batch costs the sum of its sequence lengths rather than (sequences x the
  longest one): on a CPU it is :func:`decode_incremental`, which runs the T5 decoder itself
  (:mod:`codeit.policy.t5_decoding`: cross-attention shared by an input's sequences, logits for the
  allowed tokens only), elsewhere :func:`decode_pruned`, which calls the model;
  ``decoder="hf"`` uses transformers' ``generate`` instead.
* Decoding is restricted to the ids that can appear in program text (:class:`AllowedTokens`, a
  logits processor adding a precomputed ``-inf`` mask; :func:`decode_incremental` computes only those
  columns), at a temperature, without top-k/top-p unless asked for.
* Decoded texts are cut at the first ``#`` and stripped; :func:`parse_samples` parses them with
  :mod:`codeit.program` — unparsable ones are counted and dropped, never executed.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from codeit.policy import t5_decoding
from codeit.policy.model import autocast_dtype

#: CPU sampling batches keep the decoder's self-attention cache under this many bytes
CPU_CACHE_BYTES = 2 * 2**30


class AllowedTokens(LogitsProcessor):
    """Set the score of every id outside ``allowed_ids`` to ``-inf`` (one cached additive mask)."""

    def __init__(self, allowed_ids: Sequence[int]):
        self.allowed_ids = torch.as_tensor(sorted({int(i) for i in allowed_ids}), dtype=torch.long)
        self._mask: torch.Tensor | None = None

    def mask(self, vocab_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        m = self._mask
        if m is None or m.shape[-1] != vocab_size or m.device != device or m.dtype != dtype:
            m = torch.full((vocab_size,), float("-inf"), device=device, dtype=dtype)
            ids = self.allowed_ids[self.allowed_ids < vocab_size].to(device)
            m[ids] = 0
            self._mask = m
        return m

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores + self.mask(scores.shape[-1], scores.device, scores.dtype)


@dataclass
class SampleStats:
    inputs: int = 0
    sequences: int = 0
    #: generated tokens, EOS included, padding after EOS excluded
    tokens: int = 0
    #: decoder steps actually run (sum over batches of the longest sequence)
    decoder_steps: int = 0
    batches: int = 0
    seconds: float = 0.0

    @property
    def sequences_per_s(self) -> float:
        return self.sequences / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {"inputs": self.inputs, "sequences": self.sequences, "tokens": self.tokens,
                "decoder_steps": self.decoder_steps, "batches": self.batches, "seconds": self.seconds,
                "sequences_per_s": self.sequences_per_s, "tokens_per_s": self.tokens_per_s}


@dataclass
class SampleConfig:
    n: int = 24
    temperature: float = 0.95
    max_new_tokens: int = 512
    max_input_tokens: int = 512
    #: sequences decoded per batch; 0 = 1,200 on CUDA; on CPU as many as keep the self-attention cache
    #: under :data:`CPU_CACHE_BYTES` (1,200 for tiny, 144 for small, 48 for base at 512 new tokens)
    batch_sequences: int = 0
    #: at most this many encoder tokens (summed over the batch's sequences, i.e. cross-attention cache
    #: entries) per batch; None = on CUDA from the free GPU memory (:func:`auto_batch_tokens`), on CPU
    #: unlimited; 0 = unlimited
    batch_tokens: int | None = None
    top_k: int = 0
    top_p: float = 1.0
    #: "pruned": own decoding loop that drops finished sequences from the batch and KV cache;
    #: "hf": transformers' ``generate`` (decodes every sequence until the longest one ends)
    decoder: str = "pruned"
    #: pruned decoder: compact the batch once this share of its rows has finished
    prune_fraction: float = 0.125
    #: pruned decoder: run the T5 decoder directly (:func:`decode_incremental`); None = on CPU where the
    #: model is a T5 (the GPU path calls the model, :func:`decode_pruned`)
    incremental: bool | None = None
    progress: bool = True


def clean_text(text: str) -> str:
    """Cut a decoded program at the first ``#`` and strip surrounding whitespace."""
    return text.split("#", 1)[0].strip()


def auto_batch_tokens(model, memory_fraction: float = 0.35) -> int:
    """A sampling batch's encoder-token budget from the free GPU memory: ``memory_fraction`` of it for
    the cross-attention cache, with as much again allowed for the self-attention cache."""
    device = next(model.parameters()).device
    free, _total = torch.cuda.mem_get_info(device)
    # memory the caching allocator holds but does not use (e.g. training activations) is free too
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    cfg = model.config
    inner = cfg.num_heads * cfg.d_kv
    bytes_per_token = 2 * 2 * cfg.num_decoder_layers * inner * 2  # (k, v) x (cross + self) x layers x bf16
    return max(1024, int(memory_fraction * free / bytes_per_token))


def sample_batches(lengths: Sequence[int], order: Sequence[int], n: int, max_sequences: int,
                   max_tokens: int) -> list[list[int]]:
    """Cut ``order`` (with input ``lengths`` in that order) into batches of at most ``max_sequences``
    sequences (``n`` per input) and, when ``max_tokens`` > 0, at most that many encoder tokens over all
    sequences; a batch always holds at least one input."""
    batches: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for length, i in zip(lengths, order):
        if current and ((len(current) + 1) * n > max_sequences or
                        (max_tokens > 0 and (tokens + length) * n > max_tokens)):
            batches.append(current)
            current, tokens = [], 0
        current.append(i)
        tokens += length
    if current:
        batches.append(current)
    return batches


def cpu_batch_sequences(model, n: int, max_new_tokens: int, dtype_bytes: int = 4) -> int:
    """Sequences per CPU sampling batch: as many (a multiple of ``n``, at most 1,200) as keep the decoder's
    self-attention cache under :data:`CPU_CACHE_BYTES` should every sequence run ``max_new_tokens``."""
    cfg = model.config
    per_row = 2 * cfg.num_decoder_layers * cfg.num_heads * cfg.d_kv * max(1, max_new_tokens) * dtype_bytes
    fit = CPU_CACHE_BYTES // per_row
    return max(n, min(1200, fit) // n * n)


def generate_texts(model, tokenizer, inputs: Sequence[str], config: SampleConfig, allowed_ids: Sequence[int],
                   *, precision: str = "fp32", extra_processors: Sequence[Callable] = (),
                   input_ids: Sequence[Sequence[int]] | None = None) -> tuple[list[list[str]], SampleStats]:
    """``config.n`` decoded program texts per input text (in input order), and the run's statistics.

    ``input_ids``: the inputs already tokenised (and truncated), e.g. from the policy's cache."""
    if config.decoder not in ("pruned", "hf"):
        raise ValueError(f"decoder must be 'pruned' or 'hf', not {config.decoder!r}")
    if config.temperature <= 0:
        raise ValueError("temperature must be positive (sampling); use n=1 and a small temperature instead")
    stats = SampleStats(inputs=len(inputs))
    results: list[list[str]] = [[] for _ in inputs]
    if not inputs or config.n <= 0:
        return results, stats
    device = next(model.parameters()).device
    amp_dtype = autocast_dtype(precision)
    n = config.n
    incremental = config.decoder == "pruned" and config.incremental is not False and t5_decoding.supports(model)
    if config.incremental is None:
        incremental = incremental and device.type == "cpu"
    max_sequences = config.batch_sequences
    if not max_sequences:
        max_sequences = 1200 if device.type == "cuda" else cpu_batch_sequences(
            model, n, config.max_new_tokens, 2 if amp_dtype is not None else 4)
    max_tokens = config.batch_tokens
    if max_tokens is None:
        max_tokens = auto_batch_tokens(model) if device.type == "cuda" else 0
    t0 = time.perf_counter()
    if input_ids is not None:
        encoded = list(input_ids)
    else:
        encoded = tokenizer(list(inputs), truncation=True, max_length=config.max_input_tokens)["input_ids"]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    pad_id = tokenizer.pad_token_id
    eos_id = tokenizer.eos_token_id
    gen_config = GenerationConfig(
        do_sample=True, temperature=config.temperature, top_k=config.top_k, top_p=config.top_p,
        num_return_sequences=n, max_new_tokens=config.max_new_tokens, pad_token_id=pad_id,
        eos_token_id=eos_id, decoder_start_token_id=model.config.decoder_start_token_id,
        use_cache=True)
    processors = LogitsProcessorList([AllowedTokens(allowed_ids), *extra_processors])
    weights = None
    if incremental:
        columns = torch.as_tensor(sorted({int(i) for i in allowed_ids}), dtype=torch.long, device=device)
        weights = t5_decoding.T5Weights(model, columns[columns < model.config.vocab_size], amp_dtype or torch.float32,
                                        max_steps=config.max_new_tokens)
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(inputs) * n, unit="prog", desc="sample", leave=False, dynamic_ncols=True)
    was_training = model.training
    model.eval()
    try:
        for idx in sample_batches([len(encoded[i]) for i in order], order, n, max_sequences, max_tokens):
            width = max(len(encoded[i]) for i in idx)
            input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                input_ids[row, :len(encoded[i])] = torch.as_tensor(np.asarray(encoded[i], dtype=np.int64))
                attention[row, :len(encoded[i])] = 1
            with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                                        enabled=amp_dtype is not None):
                if config.decoder == "hf":
                    out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                         generation_config=gen_config, logits_processor=processors)
                    seqs = out[:, 1:].cpu()  # drop the decoder start token
                    stats.decoder_steps += seqs.shape[1]
                elif weights is not None:
                    out, steps = decode_incremental(
                        model, weights, input_ids.to(device), attention.to(device), n=n,
                        temperature=config.temperature, max_new_tokens=config.max_new_tokens, eos_id=eos_id,
                        pad_id=pad_id, processors=list(extra_processors), top_k=config.top_k, top_p=config.top_p,
                        prune_fraction=config.prune_fraction)
                    seqs = out.cpu()
                    stats.decoder_steps += steps
                else:
                    out, steps = decode_pruned(
                        model, input_ids.to(device), attention.to(device), n=n, temperature=config.temperature,
                        max_new_tokens=config.max_new_tokens, eos_id=eos_id, pad_id=pad_id,
                        processors=processors, top_k=config.top_k, top_p=config.top_p,
                        prune_fraction=config.prune_fraction)
                    seqs = out.cpu()
                    stats.decoder_steps += steps
            # tokens up to and including the first EOS
            is_eos = seqs == eos_id
            has_eos = is_eos.any(dim=1)
            first_eos = torch.where(has_eos, is_eos.int().argmax(dim=1) + 1,
                                    torch.full_like(has_eos, seqs.shape[1], dtype=torch.long))
            stats.tokens += int(first_eos.sum())
            texts = tokenizer.batch_decode(seqs, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            for row, i in enumerate(idx):
                results[i] = [clean_text(t) for t in texts[row * n:(row + 1) * n]]
            stats.sequences += len(idx) * n
            stats.batches += 1
            if bar is not None:
                bar.update(len(idx) * n)
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    stats.seconds = time.perf_counter() - t0
    return results, stats


def _cache_keyword(model) -> str:
    """The name of the KV-cache argument of ``model.forward`` (``cache`` from transformers 5.2x on)."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _new_cache(model):
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    try:
        return EncoderDecoderCache(DynamicCache(config=model.config), DynamicCache(config=model.config))
    except TypeError:  # older signatures
        return EncoderDecoderCache(DynamicCache(), DynamicCache())


def _call_processor(processor, prefix: torch.Tensor, scores: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    if getattr(processor, "takes_rows", False):
        processor.rows = rows
    return processor(prefix, scores)


def decode_pruned(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, n: int, temperature: float,
                  max_new_tokens: int, eos_id: int, pad_id: int, processors: Sequence[Callable] = (),
                  top_k: int = 0, top_p: float = 1.0, prune_fraction: float = 0.125,
                  greedy: bool = False) -> tuple[torch.Tensor, int]:
    """Sample ``n`` continuations per input, dropping finished sequences as decoding goes on.

    The encoder runs once per input; its states are repeated ``n`` times.  Each step decodes only the
    rows still compacted into the batch; once ``prune_fraction`` of them have produced EOS, the finished
    rows are removed from the batch, the encoder states and the self- and cross-attention KV cache.
    So a batch costs the sum of its sequence lengths, not (rows x longest length) as with ``generate``.

    Processors are called as ``processor(prefix, scores)`` with the generated prefix of the rows in the
    batch (decoder start included); a processor that sets ``takes_rows`` first gets ``processor.rows``
    set to the original row index of each batch row.  Returns the generated ids
    ``(len(input_ids) * n, steps)`` on the model's device, padded with ``pad_id`` after EOS, and the
    number of decoder steps run.
    """
    from transformers.modeling_outputs import BaseModelOutput

    warpers = []
    if not greedy:
        from transformers import TopKLogitsWarper, TopPLogitsWarper

        if top_k:
            warpers.append(TopKLogitsWarper(top_k=top_k))
        if top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p=top_p))
    device = input_ids.device
    start_id = model.config.decoder_start_token_id
    start_id = pad_id if start_id is None else start_id
    hidden = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    hidden = hidden.repeat_interleave(n, dim=0)
    mask = attention_mask.repeat_interleave(n, dim=0)
    total = hidden.shape[0]
    rows = torch.arange(total, device=device)
    out = torch.full((total, max_new_tokens), pad_id, dtype=torch.long, device=device)
    prefix = torch.full((total, 1), start_id, dtype=torch.long, device=device)
    finished = torch.zeros(total, dtype=torch.bool, device=device)
    cache = _new_cache(model)
    cache_kw = _cache_keyword(model)
    steps = 0
    for step in range(max_new_tokens):
        logits = model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden), attention_mask=mask,
                       decoder_input_ids=prefix[:, -1:], use_cache=True, **{cache_kw: cache}).logits
        scores = logits[:, -1, :].float()
        for processor in processors:
            scores = _call_processor(processor, prefix, scores, rows)
        if greedy:
            token = scores.argmax(dim=-1)
        else:
            scores = scores / temperature
            for warper in warpers:
                scores = warper(prefix, scores)
            token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        out[rows, step] = token
        finished |= token == eos_id
        steps = step + 1
        n_finished = int(finished.sum())  # one host sync per step, as generate's stopping check
        if n_finished == len(rows):
            break
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        if n_finished and n_finished >= prune_fraction * len(rows):
            keep = (~finished).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            hidden, mask, prefix, rows = hidden[keep], mask[keep], prefix[keep], rows[keep]
            finished = finished[keep]
    return out[:, :steps], steps


def _warpers(top_k: int, top_p: float) -> list:
    from transformers import TopKLogitsWarper, TopPLogitsWarper

    warpers = []
    if top_k:
        warpers.append(TopKLogitsWarper(top_k=top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=top_p))
    return warpers


def draw(probs: torch.Tensor) -> torch.Tensor:
    """One column per row of ``probs`` (rows of non-negative weights), drawn in proportion to them by
    inverting the cumulative sum at one uniform per row — what ``torch.multinomial(probs, 1)`` draws,
    at a fraction of its cost on a CPU.  A column of weight zero is never drawn."""
    cdf = probs.cumsum(dim=-1)
    target = torch.rand(probs.shape[0], 1, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    index = torch.searchsorted(cdf, target, right=True).squeeze(1)
    # target can round up to the total: then take the last column of positive weight
    last = probs.shape[1] - 1 - (probs > 0).flip(-1).int().argmax(dim=-1)
    return torch.minimum(index, last)


def encode_unpadded(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The encoder states of right-padded inputs, each input encoded on its own without padding (zeros
    at padded positions).  On a CPU this is much cheaper than one padded batch: with padding, T5's
    attention adds its position bias to a (inputs, heads, length, length) mask at every layer."""
    lengths = attention_mask.sum(dim=1).tolist()
    encoder = model.get_encoder()
    if len(set(lengths)) == 1:
        return encoder(input_ids=input_ids[:, :lengths[0]]).last_hidden_state
    hidden = None
    for i, length in enumerate(lengths):
        state = encoder(input_ids=input_ids[i:i + 1, :length]).last_hidden_state
        if hidden is None:
            hidden = state.new_zeros(len(lengths), input_ids.shape[1], state.shape[-1])
        hidden[i, :length] = state[0]
    return hidden


def decode_incremental(model, weights: t5_decoding.T5Weights, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor, *, n: int, temperature: float, max_new_tokens: int,
                       eos_id: int, pad_id: int, processors: Sequence[Callable] = (), top_k: int = 0,
                       top_p: float = 1.0, prune_fraction: float = 0.125,
                       greedy: bool = False) -> tuple[torch.Tensor, int]:
    """:func:`decode_pruned` on :mod:`codeit.policy.t5_decoding`: the same draws in distribution (greedy:
    the same tokens) at a fraction of the cost per step.

    Decoding is restricted to ``weights.columns`` (the allowed ids; all ids if None): the logits are
    computed for those columns only.  A processor that sets ``takes_columns`` gets those scores and
    ``processor.columns`` (their ids); any other gets full-vocabulary scores (``-inf`` outside the
    columns), as from :func:`decode_pruned`.  ``takes_rows`` works as there.
    """
    device = input_ids.device
    columns = weights.columns
    vocab = model.get_output_embeddings().weight.shape[0]
    warpers = [] if greedy else _warpers(top_k, top_p)
    start_id = model.config.decoder_start_token_id
    start_id = pad_id if start_id is None else start_id
    hidden = encode_unpadded(model, input_ids, attention_mask)
    state = t5_decoding.T5DecoderState(weights, hidden, attention_mask, n)
    total = state.rows
    rows = torch.arange(total, device=device)
    out = torch.full((total, max_new_tokens), pad_id, dtype=torch.long, device=device)
    token = torch.full((total,), start_id, dtype=torch.long, device=device)
    prefix = token[:, None] if processors else None
    finished = torch.zeros(total, dtype=torch.bool, device=device)
    steps = 0
    for step in range(max_new_tokens):
        scores = state.step(token)
        for processor in processors:
            if getattr(processor, "takes_rows", False):
                processor.rows = rows
            if columns is None or getattr(processor, "takes_columns", False):
                processor.columns = columns
                scores = processor(prefix, scores)
            else:
                full = scores.new_full((scores.shape[0], vocab), float("-inf"))
                full[:, columns] = scores
                scores = processor(prefix, full)[:, columns]
        if greedy:
            choice = scores.argmax(dim=-1)
        else:
            scores = scores / temperature
            for warper in warpers:
                scores = warper(prefix, scores)
            choice = draw(torch.softmax(scores, dim=-1))
        token = choice if columns is None else columns[choice]
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        out[rows, step] = token
        finished |= token == eos_id
        steps = step + 1
        n_finished = int(finished.sum())  # one host sync per step
        if n_finished == len(rows):
            break
        if prefix is not None:
            prefix = torch.cat([prefix, token[:, None]], dim=1)
        if n_finished and n_finished >= prune_fraction * len(rows):
            keep = (~finished).nonzero().squeeze(1)
            state.keep(keep)
            rows, token, finished = rows[keep], token[keep], finished[keep]
            if prefix is not None:
                prefix = prefix[keep]
    return out[:, :steps], steps


@dataclass
class ParseStats:
    sampled: int = 0
    parsed: int = 0
    unparsable: int = 0
    distinct: int = 0
    #: a few parse error messages, for inspection
    examples: list[str] = field(default_factory=list)

    @property
    def parse_rate(self) -> float:
        return self.parsed / self.sampled if self.sampled else 0.0


def parse_samples(texts: Sequence[Sequence[str]], keep_errors: int = 5) -> tuple[list[list], ParseStats]:
    """Parse every text with :func:`codeit.program.parse_lines`; unparsable ones are counted and dropped.

    Returns, per input, the parsed programs (in sampling order, duplicates kept) and the statistics.
    """
    from codeit.program import ProgramError, parse_lines

    stats = ParseStats()
    programs: list[list] = []
    for group in texts:
        parsed = []
        seen = set()
        for text in group:
            stats.sampled += 1
            try:
                program = parse_lines(text)
            except ProgramError as exc:
                stats.unparsable += 1
                if len(stats.examples) < keep_errors:
                    stats.examples.append(str(exc))
                continue
            parsed.append(program)
            stats.parsed += 1
            if program.text not in seen:
                seen.add(program.text)
                stats.distinct += 1
        programs.append(parsed)
    return programs, stats
