"""The policy: a T5 seq2seq model with its tokenizer and optimiser, trained and sampled by the loop.

Plain Python API, usable without pluggy::

    policy = Policy(PolicyConfig(model="tiny"))
    stats = policy.train([(input_text, program_text), ...])      # one epoch
    result = policy.sample([input_text, ...], n=24, temperature=0.95)
    result.programs[0]                                           # parsed Programs of input 0
    policy.save("run/policy"); policy.load("run/policy")        # atomic checkpoints
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codeit.config import PAPER_CONFIG
from codeit.policy import checkpoint as ckpt
from codeit.policy.cache import (
    DEFAULT_ENTRIES,
    LRUCache,
    cached_grid_text,
    cached_token_ids,
    id_dtype,
    piecewise_token_ids,
)
from codeit.policy.cpu import available_cores, torch_threads, use_cpu_kernels
from codeit.policy.model import (
    ModelSpec,
    count_parameters,
    is_size,
    make_model,
    resolve_device,
    resolve_precision,
)
from codeit.policy.sampling import ParseStats, SampleConfig, SampleStats, generate_texts, parse_samples
from codeit.policy.training import (
    TrainConfig,
    TrainStats,
    evaluate_loss,
    make_optimizer,
    plain_token_ids,
    train_epoch,
)

#: micro-batch token budget on CUDA when ``max_batch_tokens`` is None (T5-base: ~30 GB of activations)
DEFAULT_CUDA_BATCH_TOKENS = 16384
#: ... and on CPU: small micro-batches keep the attention scores in cache (measured fastest for tiny
#: and small; benchmarks/bench_policy.py)
DEFAULT_CPU_BATCH_TOKENS = 2048


_PAPER = PAPER_CONFIG["policy"]


@dataclass
class PolicyConfig:
    """Everything that defines a policy; field names match the experiment configuration's ``policy``
    section, and the defaults are its values (:data:`codeit.config.PAPER_CONFIG`) except ``model``
    and ``seed``: a policy built on its own is the tiny size with seed 0 (the experiment's default
    model is the paper's CodeT5+ 220M, its seed the run's)."""

    #: a size name (tiny, small, base, large) or a pretrained model name / local directory
    model: str = "tiny"
    #: None: the DSL tokenizer for a size, the model's own tokenizer for a name/path; or a name/path
    tokenizer: str | None = None
    #: keep only the configuration of a pretrained model (ablation A4); sizes are random anyway
    random_weights: bool = _PAPER["random_weights"]
    dropout: float | None = None
    device: str = _PAPER["device"]
    #: auto (bf16 on CUDA; on CPU bf16 where it is native and the model is not tiny, else fp32), fp32,
    #: bf16, fp16 (with a GradScaler)
    precision: str = _PAPER["precision"]
    tf32: bool = _PAPER["tf32"]
    seed: int = 0
    # training
    lr: float = _PAPER["lr"]
    weight_decay: float = _PAPER["weight_decay"]
    batch_size: int = _PAPER["batch_size"]
    grad_accum: int = _PAPER["grad_accum"]
    max_grad_norm: float = _PAPER["max_grad_norm"]
    #: encoder input cap (two sides of at most ``max_side_tokens`` each, a newline and EOS)
    max_input_tokens: int = _PAPER["max_input_tokens"]
    max_target_tokens: int = _PAPER["max_target_tokens"]
    bucket_batches: int = _PAPER["bucket_batches"]
    #: micro-batches by padded-token budget (speed only: a step still averages batch_size * grad_accum);
    #: None = 16,384 on CUDA, 2,048 on CPU; 0 = off (batch_size examples)
    max_batch_tokens: int | None = None
    # task -> input text (codeit.encoding), sides counted with this policy's tokenizer
    max_side_tokens: int = _PAPER["max_side_tokens"]
    #: demonstration examples per input (None: all that fit; 1 for ablation A5)
    n_examples: int | None = None
    # sampling
    n_samples: int = _PAPER["n_samples"]
    temperature: float = _PAPER["temperature"]
    max_new_tokens: int = _PAPER["max_new_tokens"]
    sample_batch_sequences: int = _PAPER["sample_batch_sequences"]
    #: encoder tokens per sampling batch; None = from free GPU memory on CUDA, unlimited on CPU
    sample_batch_tokens: int | None = None
    top_k: int = _PAPER["top_k"]
    top_p: float = _PAPER["top_p"]
    #: "pruned" (own loop, drops finished sequences) or "hf" (transformers' generate)
    decoder: str = _PAPER["decoder"]
    #: collate the next training step's batches while the device trains (None: on CUDA only)
    prefetch: bool | None = None
    progress: bool = _PAPER["progress"]

    @classmethod
    def from_dict(cls, values: dict | None) -> PolicyConfig:
        """Build from a mapping, ignoring keys that are not fields."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in names})

    def train_config(self) -> TrainConfig:
        return TrainConfig(lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size,
                           grad_accum=self.grad_accum, max_grad_norm=self.max_grad_norm,
                           max_input_tokens=self.max_input_tokens, max_target_tokens=self.max_target_tokens,
                           bucket_batches=self.bucket_batches, max_batch_tokens=self.max_batch_tokens or 0,
                           prefetch=self.prefetch, progress=self.progress)

    def sample_config(self, **overrides) -> SampleConfig:
        cfg = SampleConfig(n=self.n_samples, temperature=self.temperature, max_new_tokens=self.max_new_tokens,
                           max_input_tokens=self.max_input_tokens, batch_sequences=self.sample_batch_sequences,
                           batch_tokens=self.sample_batch_tokens,
                           top_k=self.top_k, top_p=self.top_p, decoder=self.decoder, progress=self.progress)
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        return cfg


@dataclass
class SampleResult:
    """Per input: the decoded texts and the programs that parsed; plus decode and parse statistics."""

    texts: list[list[str]]
    programs: list[list] = field(default_factory=list)
    stats: SampleStats = field(default_factory=SampleStats)
    parse: ParseStats = field(default_factory=ParseStats)

    def metrics(self) -> dict:
        out = {f"sample_{k}": v for k, v in self.stats.as_dict().items()}
        out.update(sample_parsed=self.parse.parsed, sample_unparsable=self.parse.unparsable,
                   sample_distinct=self.parse.distinct, sample_parse_rate=self.parse.parse_rate)
        return out


def _as_pair(item) -> tuple[str, str]:
    """(input text, program text) from a pair or an object with ``input_text`` and ``program``."""
    if isinstance(item, tuple | list) and len(item) == 2:
        a, b = item
    else:
        a = getattr(item, "input_text", None)
        b = getattr(item, "program_text", None) or getattr(item, "program", None)
        if a is None or b is None:
            raise TypeError(f"cannot make an (input, program) pair of {item!r}")
    b = getattr(b, "text", b)  # a codeit.program.Program
    return str(a), str(b)


@contextlib.contextmanager
def _explained_load_failure(what: str, name: Any):
    """Turn transformers' "couldn't connect / not a folder" error for a pretrained name into one that
    names the setting and the ways out (the hub is unreachable on many machines)."""
    try:
        yield
    except OSError as err:
        raise OSError(
            f"cannot load the {what} {str(name)!r} (policy.model / policy.tokenizer): it is neither a local "
            "folder written by save_pretrained nor in the local Hugging Face cache, and the hub could not be "
            "reached. Download it once on a connected machine (HF_HOME / HF_HUB_CACHE say where the cache "
            "is), point policy.model at a local folder, or use a size name (tiny, small, base, large) for "
            f"a randomly initialised model. Cause: {err}") from err


class Policy:
    """Model + tokenizer + optimiser; see the module docstring."""

    def __init__(self, config: PolicyConfig | dict | None = None, *, model=None, tokenizer=None,
                 threads: int | None = None, cache_entries: int = DEFAULT_ENTRIES):
        """``threads``: torch threads while training and sampling on a CPU (None: every core this process
        may use; the executor's workers are idle then); ``cache_entries``: size of each of the caches of
        encoded tasks and token ids (0: no caching)."""
        if config is None:
            config = PolicyConfig()
        elif isinstance(config, dict):
            config = PolicyConfig.from_dict(config)
        self.config = config = replace(config)  # a copy: auto values are resolved in it
        self.device = resolve_device(config.device)
        if config.max_batch_tokens is None:
            config.max_batch_tokens = (DEFAULT_CUDA_BATCH_TOKENS if self.device.type == "cuda"
                                       else DEFAULT_CPU_BATCH_TOKENS)
        if self.device.type == "cuda" and config.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.rng = np.random.default_rng(config.seed)
        self.threads = threads
        self._texts = LRUCache(cache_entries)  # task -> input text
        self._ids = LRUCache(cache_entries)  # (max length, text) -> token ids
        self._grid_texts = LRUCache(cache_entries)  # grid -> its text
        self._pieces = LRUCache(cache_entries)  # grid text (DSL tokenizer) -> token ids
        if tokenizer is None:
            from codeit.policy.tokenizer import load_tokenizer

            name = config.tokenizer
            if name is None and not is_size(config.model):
                name = config.model
            with _explained_load_failure("tokenizer", name):
                tokenizer = load_tokenizer(name)
        self.tokenizer = tokenizer
        if model is None:
            with _explained_load_failure("model", config.model):
                model = make_model(ModelSpec(config.model, config.random_weights, config.dropout), tokenizer,
                                   seed=config.seed)
        self._set_model(model)
        self.precision = resolve_precision(config.precision, self.device, getattr(model.config, "d_model", None))
        self.optimizer: torch.optim.Optimizer | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.epochs = 0
        self.steps = 0
        self._allowed_ids: list[int] | None = None

    def _set_model(self, model) -> None:
        """Move ``model`` to the device; on a CPU give it the leaner attention and dropout
        (:func:`codeit.policy.cpu.use_cpu_kernels`: same computation, same saved files)."""
        self.model = model.to(self.device)
        if self.device.type == "cpu":
            use_cpu_kernels(self.model)

    def _set_tokenizer(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self._allowed_ids = None
        self._texts.clear()
        self._ids.clear()
        self._grid_texts.clear()
        self._pieces.clear()

    def _threads(self):
        """The torch thread count for training and sampling (a context manager)."""
        if self.device.type != "cpu":
            return torch_threads(None)
        return torch_threads(self.threads or available_cores())

    # -- information ---------------------------------------------------------------------------------
    @property
    def n_parameters(self) -> int:
        return count_parameters(self.model)

    def describe(self) -> dict:
        return {"model": self.config.model, "parameters": self.n_parameters, "vocab": len(self.tokenizer),
                "device": str(self.device), "precision": self.precision,
                "threads": (self.threads or available_cores()) if self.device.type == "cpu" else None}

    @property
    def allowed_token_ids(self) -> list[int]:
        """Ids decoding may produce (program tokens, EOS, pad)."""
        if self._allowed_ids is None:
            from codeit.policy.tokenizer import program_token_ids

            self._allowed_ids = program_token_ids(self.tokenizer)
        return self._allowed_ids

    # -- training ------------------------------------------------------------------------------------
    def _ensure_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            self.optimizer = make_optimizer(self.model, self.config.train_config())
            if self.precision == "fp16":
                self.scaler = torch.amp.GradScaler(self.device.type)
        return self.optimizer

    def train(self, experiences: Iterable, *, on_step: Callable[[dict], None] | None = None,
              progress: bool | None = None) -> TrainStats:
        """One epoch over ``experiences``: (input text, program text) pairs or objects with
        ``input_text`` and ``program``/``program_text``.  The optimiser persists across calls."""
        pairs = [_as_pair(e) for e in experiences]
        optimizer = self._ensure_optimizer()
        cfg = self.config.train_config()
        if progress is not None:
            cfg.progress = progress
        with self._threads():
            stats = train_epoch(self.model, self.tokenizer, optimizer, pairs, cfg, self.rng,
                                precision=self.precision, scaler=self.scaler, on_step=on_step,
                                token_ids=self.token_ids)
        self.epochs += 1
        self.steps += stats.steps
        return stats

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of the (persistent) optimiser and of later optimisers."""
        self.config.lr = float(lr)
        if self.optimizer is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = float(lr)

    def loss(self, experiences: Iterable, batch_size: int = 32) -> float:
        """Mean token cross-entropy of ``experiences`` in eval mode."""
        pairs = [_as_pair(e) for e in experiences]
        with self._threads():
            return evaluate_loss(self.model, self.tokenizer, pairs, batch_size=batch_size,
                                 max_input_tokens=self.config.max_input_tokens,
                                 max_target_tokens=self.config.max_target_tokens, precision=self.precision,
                                 token_ids=self.token_ids)

    # -- sampling ------------------------------------------------------------------------------------
    def encode_task(self, task) -> str:
        """The model input text of ``task`` (:func:`codeit.encoding.encode_task`), each side capped at
        ``max_side_tokens`` tokens of this policy's tokenizer.  Cached by task (content, not key) and
        the settings that shape the text."""
        key = (task, self.config.n_examples, self.config.max_side_tokens)
        try:
            text = self._texts.get(key)
        except TypeError:  # an unhashable task-like object
            return self._encode_task(task)
        if text is None:
            text = self._encode_task(task)
            self._texts.put(key, text)
        return text

    def _encode_task(self, task) -> str:
        from codeit.encoding import encode_grid, encode_task
        from codeit.policy.tokenizer import grid_token_counter

        return encode_task(task, n_examples=self.config.n_examples, max_tokens=self.config.max_side_tokens,
                           tokenizer=grid_token_counter(self.tokenizer),
                           grid_text=cached_grid_text(self._grid_texts, encode_grid))

    def token_ids(self, texts: Sequence[str], max_length: int | None = None) -> list[np.ndarray]:
        """Token ids of ``texts`` with this policy's tokenizer (truncated to ``max_length`` when set),
        from the cache where present."""
        from codeit.policy.tokenizer import is_dsl_tokenizer

        dtype = id_dtype(len(self.tokenizer))
        if is_dsl_tokenizer(self.tokenizer):
            tokenize = piecewise_token_ids(self.tokenizer, self._pieces, dtype)
        else:
            tokenize = plain_token_ids(self.tokenizer)
        return cached_token_ids(self._ids, texts, max_length, tokenize, dtype)

    def cache_stats(self) -> dict[str, dict[str, int]]:
        """Entries, hits and misses of the caches of encoded tasks and token ids (and of their finer
        caches: grid texts, token ids of pieces of text)."""
        return {"texts": self._texts.stats(), "token_ids": self._ids.stats(), "grid_texts": self._grid_texts.stats(),
                "pieces": self._pieces.stats()}

    def sample_texts(self, inputs: Sequence[str], n: int | None = None, temperature: float | None = None,
                     max_new_tokens: int | None = None, progress: bool | None = None,
                     extra_processors: Sequence = (), seed: int | None = None
                     ) -> tuple[list[list[str]], SampleStats]:
        """``n`` decoded texts per input text.  With ``seed`` the draw is reproducible and torch's global
        RNG is left untouched (a forked RNG is used)."""
        cfg = self.config.sample_config(n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                                        progress=progress)

        texts = list(inputs)

        def run():
            return generate_texts(self.model, self.tokenizer, texts, cfg, self.allowed_token_ids,
                                  precision=self.precision, extra_processors=extra_processors,
                                  input_ids=self.token_ids(texts, cfg.max_input_tokens))

        with self._threads():
            if seed is None:
                return run()
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(int(seed))
                return run()

    def sample(self, inputs: Sequence, n: int | None = None, temperature: float | None = None,
               max_new_tokens: int | None = None, progress: bool | None = None,
               seed: int | None = None) -> SampleResult:
        """``n`` programs per input (an encoded input text, or a task encoded with :mod:`codeit.encoding`).

        Decoded texts that do not parse are counted in ``result.parse.unparsable`` and dropped.
        """
        texts_in = [x if isinstance(x, str) else self.encode_task(x) for x in inputs]
        texts, stats = self.sample_texts(texts_in, n, temperature, max_new_tokens, progress, seed=seed)
        programs, parse_stats = parse_samples(texts)
        return SampleResult(texts=texts, programs=programs, stats=stats, parse=parse_stats)

    # -- checkpoints ---------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"epochs": self.epochs, "steps": self.steps, "config": asdict(self.config)}

    def save(self, path: str | os.PathLike, extra_state: dict | None = None) -> Path:
        """Atomically write model, tokenizer, optimiser, scaler and RNG states to ``path``."""
        state = self.state()
        if extra_state:
            state["extra"] = extra_state
        return ckpt.save_checkpoint(path, model=self.model, tokenizer=self.tokenizer, optimizer=self.optimizer,
                                    scaler=self.scaler, state=state, generator=self.rng)

    def load(self, path: str | os.PathLike, restore_rng: bool = True) -> dict:
        """Restore a checkpoint written by :meth:`save` into this policy; returns its saved state."""
        from transformers import T5ForConditionalGeneration

        from codeit.policy.tokenizer import load_tokenizer

        found = ckpt.resolve_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no complete checkpoint at {path}")
        self._set_tokenizer(load_tokenizer(found / "tokenizer"))
        self._set_model(T5ForConditionalGeneration.from_pretrained(found / "model"))
        return self._load_states(found, restore_rng)

    def _load_states(self, found: Path, restore_rng: bool) -> dict:
        parts = ckpt.load_checkpoint_states(found, map_location=self.device)
        self.optimizer = None
        self.scaler = None
        if parts["optimizer"] is not None:
            self._ensure_optimizer().load_state_dict(parts["optimizer"])
        if parts["scaler"] is not None:
            if self.scaler is None:
                self.scaler = torch.amp.GradScaler(self.device.type)
            self.scaler.load_state_dict(parts["scaler"])
        state = parts["state"]
        self.epochs = int(state.get("epochs", 0))
        self.steps = int(state.get("steps", 0))
        if restore_rng:
            ckpt.restore_rng_state(parts["rng"], self.rng)
        return state

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, config: PolicyConfig | dict | None = None,
                        **kwargs) -> Policy:
        """A policy restored from ``path``; ``config`` defaults to the one saved with it; ``kwargs`` go
        to the constructor (``threads``, ``cache_entries``)."""
        found = ckpt.resolve_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no complete checkpoint at {path}")
        if config is None:
            import json

            config = PolicyConfig.from_dict(json.loads((found / "state.json").read_text()).get("config"))
        elif isinstance(config, dict):
            config = PolicyConfig.from_dict(config)
        from transformers import T5ForConditionalGeneration

        from codeit.policy.tokenizer import load_tokenizer

        policy = cls(config, model=T5ForConditionalGeneration.from_pretrained(found / "model"),
                     tokenizer=load_tokenizer(found / "tokenizer"), **kwargs)
        policy._load_states(found, restore_rng=True)
        return policy

