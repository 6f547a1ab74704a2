"""One training epoch of the seq2seq policy over (input text, program text) pairs.

* Texts are tokenised once per epoch (through the policy's cache of token ids, :mod:`codeit.policy.cache`);
  inputs longer than ``max_input_tokens`` are truncated, examples whose program exceeds
  ``max_target_tokens`` are dropped (they could never be generated whole) and counted.
* Batches are bucketed by length: the shuffled examples are cut into pools of ``bucket_batches``
  batches, each pool is sorted by (input length in buckets of 64 tokens, target length) and cut into
  batches, and the batch order is shuffled — so padding stays small while the data order stays
  random.  Padded lengths are rounded up to ``pad_multiple`` (8 on CUDA, for tensor cores).
* Gradient accumulation: an optimiser step covers ``batch_size * grad_accum`` examples, ``grad_accum``
  of those batches; with ``max_batch_tokens`` set, its examples are re-cut into micro-batches of at
  most that many padded tokens (:func:`micro_batches`: speed only).  Its loss is the mean token
  cross-entropy over all target tokens of the step (token-weighted, so the way the examples are split
  into micro-batches does not change the objective).  Gradients are
  clipped to ``max_grad_norm``; a step with a non-finite gradient is skipped.
* Prefetch (on CUDA by default): a background thread collates the next optimiser step's micro-batches
  into pinned memory while the device trains on the current one, so the GPU does not wait on the
  CPU between steps; the examples, their order and the losses are the same either way.
* Mixed precision: autocast to bf16 (or fp16 with a ``GradScaler``) when ``precision`` says so; the
  weights and optimiser state stay fp32.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from codeit.policy.model import autocast_dtype, round_up

IGNORE_INDEX = -100
#: ``token_ids(texts, max_length) -> ids per text`` (truncated to ``max_length`` unless it is None)
TokenIds = Callable[[list[str], "int | None"], Sequence[Sequence[int]]]
#: inputs are sorted in buckets of this many tokens, targets exactly within a bucket: with both
#: sequences varying, this wastes far less padding than sorting by either length alone
INPUT_BUCKET = 64


@dataclass
class TrainConfig:
    lr: float = 5e-5
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 8
    grad_accum: int = 64
    max_grad_norm: float = 1.0
    max_input_tokens: int = 512
    max_target_tokens: int = 512
    #: batches per length-sorting pool
    bucket_batches: int = 256
    #: > 0: each optimiser step's ``batch_size * grad_accum`` examples are cut into micro-batches of up to
    #: this many padded tokens (inputs + targets) instead of ``grad_accum`` batches of ``batch_size``
    max_batch_tokens: int = 0
    #: round padded lengths up to this multiple; 0 = 8 on CUDA, 1 on CPU
    pad_multiple: int = 0
    #: collate the next step's micro-batches in a background thread; None = on CUDA, off on CPU (where the
    #: thread would only compete with the network for the same cores)
    prefetch: bool | None = None
    progress: bool = True


@dataclass
class TrainStats:
    """What one epoch did; ``losses`` holds each optimiser step's mean token loss."""

    examples: int = 0
    dropped_long: int = 0
    #: inputs that reached ``max_input_tokens`` (cut there, unless exactly that long): keep it at least
    #: ``2 * max_side_tokens + 2`` so that the sides are capped by whole examples instead
    truncated_inputs: int = 0
    steps: int = 0
    skipped_steps: int = 0
    input_tokens: int = 0
    target_tokens: int = 0
    padded_tokens: int = 0
    seconds: float = 0.0
    loss: float = float("nan")
    losses: list[float] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.target_tokens

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def padding_fraction(self) -> float:
        """Share of the padded batch positions that are padding."""
        return 1.0 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("losses")
        out.update(tokens=self.tokens, examples_per_s=self.examples_per_s, tokens_per_s=self.tokens_per_s,
                   padding_fraction=self.padding_fraction)
        return out


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the model's trainable parameters (fused kernels on CUDA)."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = bool(params) and params[0].device.type == "cuda"
    return torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay,
                             fused=fused or None)


def tokenize_pairs(tokenizer, pairs: Sequence[tuple[str, str]], max_input_tokens: int, max_target_tokens: int,
                   token_ids: TokenIds | None = None) -> tuple[list[Sequence[int]], list[Sequence[int]], int]:
    """Token ids of inputs (truncated) and targets (EOS-terminated); over-long targets are dropped.

    ``token_ids(texts, max_length)`` tokenises (e.g. through the policy's cache); by default
    ``tokenizer`` is called.  Returns ``(inputs, targets, n_dropped)``.
    """
    if not pairs:
        return [], [], 0
    if token_ids is None:
        token_ids = plain_token_ids(tokenizer)
    inputs = token_ids([p[0] for p in pairs], max_input_tokens)
    targets = token_ids([p[1] for p in pairs], None)
    keep = [i for i, t in enumerate(targets) if len(t) <= max_target_tokens]
    dropped = len(targets) - len(keep)
    if dropped:
        inputs = [inputs[i] for i in keep]
        targets = [targets[i] for i in keep]
    return inputs, targets, dropped


def plain_token_ids(tokenizer) -> TokenIds:
    """``token_ids(texts, max_length)`` calling ``tokenizer`` (truncating when ``max_length`` is set)."""

    def token_ids(texts: list[str], max_length: int | None) -> list[list[int]]:
        if max_length is None:
            return tokenizer(texts, truncation=False, return_attention_mask=False)["input_ids"]
        return tokenizer(texts, truncation=True, max_length=max_length, return_attention_mask=False)["input_ids"]

    return token_ids


def bucket_batches(input_lengths: Sequence[int], target_lengths: Sequence[int], batch_size: int,
                   rng: np.random.Generator, pool_batches: int = 256, max_tokens: int = 0,
                   pad_multiple: int = 1) -> list[np.ndarray]:
    """Shuffle, sort within pools of ``pool_batches`` batches by length, batch, shuffle the batches.

    The sort key is (input length // :data:`INPUT_BUCKET`, target length).
    With ``max_tokens`` > 0 a batch holds as many examples as fit in that many padded tokens (inputs
    plus targets, lengths rounded up to ``pad_multiple``) instead of ``batch_size``.
    """
    n = len(input_lengths)
    if n == 0:
        return []
    in_len = np.asarray(input_lengths)
    tgt_len = np.asarray(target_lengths)
    order = rng.permutation(n)
    pool = max(1, pool_batches) * batch_size
    batches: list[np.ndarray] = []
    for start in range(0, n, pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.lexsort((tgt_len[chunk], in_len[chunk] // INPUT_BUCKET))]
        if max_tokens <= 0:
            batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
        else:
            batches.extend(pack_by_tokens(chunk, in_len, tgt_len, max_tokens, pad_multiple))
    perm = rng.permutation(len(batches))
    return [batches[i] for i in perm]


def pack_by_tokens(indices: np.ndarray, input_lengths: np.ndarray, target_lengths: np.ndarray, max_tokens: int,
                   pad_multiple: int = 1) -> list[np.ndarray]:
    """Cut ``indices`` (in order) into consecutive batches of at most ``max_tokens`` padded tokens (inputs
    plus targets, lengths rounded up to ``pad_multiple``); a batch holds at least one example."""
    batches: list[np.ndarray] = []
    first = 0
    longest_in = longest_tgt = 0
    for k, idx in enumerate(indices):
        li = max(longest_in, round_up(int(input_lengths[idx]), pad_multiple))
        lt = max(longest_tgt, round_up(int(target_lengths[idx]), pad_multiple))
        if k > first and (k - first + 1) * (li + lt) > max_tokens:
            batches.append(indices[first:k])
            first = k
            li = round_up(int(input_lengths[idx]), pad_multiple)
            lt = round_up(int(target_lengths[idx]), pad_multiple)
        longest_in, longest_tgt = li, lt
    if len(indices):
        batches.append(indices[first:])
    return batches


def micro_batches(step: list[np.ndarray], input_lengths: np.ndarray, target_lengths: np.ndarray, max_tokens: int,
                  pad_multiple: int = 1) -> list[np.ndarray]:
    """The micro-batches of one optimiser step: its batches as they are, or (``max_tokens`` > 0) its
    examples sorted by length and packed by :func:`pack_by_tokens` — the same examples either way, so
    the step's loss (a token-weighted mean) does not depend on the packing."""
    if max_tokens <= 0:
        return step
    examples = np.concatenate(step)
    examples = examples[np.lexsort((target_lengths[examples], input_lengths[examples] // INPUT_BUCKET))]
    return pack_by_tokens(examples, input_lengths, target_lengths, max_tokens, pad_multiple)


def step_groups(batches: list[np.ndarray], examples_per_step: int) -> list[list[np.ndarray]]:
    """Consecutive batches accumulated until they hold ``examples_per_step`` examples (the last may hold
    fewer)."""
    groups: list[list[np.ndarray]] = []
    current: list[np.ndarray] = []
    count = 0
    for batch in batches:
        current.append(batch)
        count += len(batch)
        if count >= examples_per_step:
            groups.append(current)
            current, count = [], 0
    if current:
        groups.append(current)
    return groups


def prepared_steps(groups: list[list[np.ndarray]], prepare: Callable[[list[np.ndarray]], list],
                   prefetch: bool) -> Iterator[tuple[list[np.ndarray], list]]:
    """``(group, prepare(group))`` for each optimiser step's group, in order.  With ``prefetch`` one
    background thread prepares the next group while the caller trains on the current one; an error
    in ``prepare`` is raised here, at the step it belongs to."""
    if not prefetch or len(groups) < 2:
        for group in groups:
            yield group, prepare(group)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="codeit-train-prefetch") as pool:
        pending = pool.submit(prepare, groups[0])
        for i, group in enumerate(groups):
            ready = pending.result()
            if i + 1 < len(groups):
                pending = pool.submit(prepare, groups[i + 1])
            yield group, ready


def collate(inputs: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], pad_id: int,
            decoder_start_id: int, pad_multiple: int = 1) -> dict[str, torch.Tensor]:
    """Right-padded CPU tensors: input ids, attention mask, decoder input ids (shifted) and labels."""
    b = len(inputs)
    src_len = round_up(max(len(x) for x in inputs), pad_multiple)
    tgt_len = round_up(max(len(y) for y in targets), pad_multiple)
    input_ids = np.full((b, src_len), pad_id, dtype=np.int64)
    attention = np.zeros((b, src_len), dtype=np.int64)
    labels = np.full((b, tgt_len), IGNORE_INDEX, dtype=np.int64)
    decoder_ids = np.full((b, tgt_len), pad_id, dtype=np.int64)
    decoder_ids[:, 0] = decoder_start_id
    for i, (x, y) in enumerate(zip(inputs, targets)):
        input_ids[i, :len(x)] = x
        attention[i, :len(x)] = 1
        labels[i, :len(y)] = y
        decoder_ids[i, 1:len(y)] = y[:-1]
    return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention),
            "decoder_input_ids": torch.from_numpy(decoder_ids), "labels": torch.from_numpy(labels)}


def sequence_loss_sum(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed token cross-entropy of ``batch`` (labels ``-100`` ignored), computed in fp32."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                decoder_input_ids=batch["decoder_input_ids"], use_cache=False)
    logits = out.logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")


def train_epoch(model, tokenizer, optimizer: torch.optim.Optimizer, pairs: Sequence[tuple[str, str]],
                config: TrainConfig, rng: np.random.Generator, *, precision: str = "fp32",
                scaler: torch.amp.GradScaler | None = None,
                on_step: Callable[[dict], None] | None = None, token_ids: TokenIds | None = None) -> TrainStats:
    """Train ``model`` for one epoch over ``pairs``; returns the epoch's :class:`TrainStats`.

    ``on_step`` receives a dict per optimiser step (step, loss, grad_norm, lr, examples, tokens,
    examples_per_s, tokens_per_s).  ``rng`` drives the shuffling (dropout uses torch's global RNG).
    ``token_ids``: see :func:`tokenize_pairs`.
    """
    device = next(model.parameters()).device
    pad_multiple = config.pad_multiple or (8 if device.type == "cuda" else 1)
    amp_dtype = autocast_dtype(precision)
    if precision == "fp16" and scaler is None:
        raise ValueError("fp16 training needs a GradScaler")
    stats = TrainStats()
    t0 = time.perf_counter()
    inputs, targets, stats.dropped_long = tokenize_pairs(tokenizer, pairs, config.max_input_tokens,
                                                         config.max_target_tokens, token_ids)
    stats.truncated_inputs = sum(len(x) >= config.max_input_tokens for x in inputs)
    in_len = np.fromiter((len(x) for x in inputs), dtype=np.int64, count=len(inputs))
    tgt_len = np.fromiter((len(y) for y in targets), dtype=np.int64, count=len(targets))
    # steps of exactly batch_size * grad_accum examples (the last may be smaller); max_batch_tokens only
    # changes how a step is cut into micro-batches
    batches = bucket_batches(in_len, tgt_len, config.batch_size, rng, config.bucket_batches)
    groups = step_groups(batches, config.batch_size * max(1, config.grad_accum))
    pad_id = tokenizer.pad_token_id
    start_id = model.config.decoder_start_token_id
    if start_id is None:
        start_id = pad_id
    non_blocking = device.type == "cuda"
    prefetch = config.prefetch if config.prefetch is not None else device.type == "cuda"

    def prepare(group: list[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        """One step's micro-batches as CPU tensors (pinned for an asynchronous copy to a GPU)."""
        out = []
        for batch_idx in micro_batches(group, in_len, tgt_len, config.max_batch_tokens, pad_multiple):
            batch = collate([inputs[i] for i in batch_idx], [targets[i] for i in batch_idx], pad_id,
                            start_id, pad_multiple)
            out.append({k: v.pin_memory() for k, v in batch.items()} if non_blocking else batch)
        return out

    bar = None
    if config.progress and groups:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(inputs), unit="ex", desc="train", leave=False, dynamic_ncols=True)
    model.train()
    loss_total = 0.0
    token_total = 0
    try:
        for group, step_batches in prepared_steps(groups, prepare, prefetch):
            n_tokens = sum(len(targets[i]) for batch in group for i in batch)
            loss_acc = torch.zeros((), device=device)
            optimizer.zero_grad(set_to_none=True)
            for batch in step_batches:
                stats.padded_tokens += batch["input_ids"].numel() + batch["labels"].numel()
                batch = {k: v.to(device, non_blocking=non_blocking) for k, v in batch.items()}
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                    enabled=amp_dtype is not None):
                    loss_sum = sequence_loss_sum(model, batch)
                loss = loss_sum / n_tokens
                (scaler.scale(loss) if scaler is not None else loss).backward()
                loss_acc += loss.detach()
            if scaler is not None:
                scaler.unscale_(optimizer)
            params = [p for g in optimizer.param_groups for p in g["params"]]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            if scaler is not None:
                scaler.step(optimizer)  # skips the step itself on inf/nan
                scaler.update()
                finite = math.isfinite(float(grad_norm))
            else:
                finite = math.isfinite(float(grad_norm))
                if finite:
                    optimizer.step()
            if not finite:
                stats.skipped_steps += 1
            optimizer.zero_grad(set_to_none=True)
            step_loss = float(loss_acc)
            n_examples = sum(len(b) for b in group)
            stats.steps += 1
            stats.examples += n_examples
            stats.input_tokens += sum(len(inputs[i]) for b in group for i in b)
            stats.target_tokens += n_tokens
            stats.losses.append(step_loss)
            loss_total += step_loss * n_tokens
            token_total += n_tokens
            if bar is not None:
                bar.update(n_examples)
                bar.set_postfix(loss=f"{step_loss:.4f}")
            if on_step is not None:
                elapsed = time.perf_counter() - t0
                on_step({"step": stats.steps, "loss": step_loss, "grad_norm": float(grad_norm),
                         "lr": optimizer.param_groups[0]["lr"], "examples": stats.examples,
                         "tokens": stats.tokens, "examples_per_s": stats.examples / elapsed,
                         "tokens_per_s": stats.tokens / elapsed})
    finally:
        if bar is not None:
            bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    stats.seconds = time.perf_counter() - t0
    stats.loss = loss_total / token_total if token_total else float("nan")
    return stats


@torch.no_grad()
def evaluate_loss(model, tokenizer, pairs: Sequence[tuple[str, str]], *, batch_size: int = 32,
                  max_input_tokens: int = 512, max_target_tokens: int = 512, precision: str = "fp32",
                  token_ids: TokenIds | None = None) -> float:
    """Mean token cross-entropy of ``pairs`` in eval mode (no dropout, no update)."""
    device = next(model.parameters()).device
    inputs, targets, _ = tokenize_pairs(tokenizer, pairs, max_input_tokens, max_target_tokens, token_ids)
    amp_dtype = autocast_dtype(precision)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    start_id = model.config.decoder_start_token_id
    start_id = tokenizer.pad_token_id if start_id is None else start_id
    try:
        for s in range(0, len(inputs), batch_size):
            batch = collate(inputs[s:s + batch_size], targets[s:s + batch_size], tokenizer.pad_token_id, start_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                total += float(sequence_loss_sum(model, batch))
            count += int((batch["labels"] != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    return total / count if count else float("nan")
