"""T5 encoder-decoder construction: named sizes, pretrained names/paths, device and precision.

Sizes (random initialisation, vocabulary of the DSL tokenizer unless another tokenizer is given):

========  =======  =====  ======  =====  ====  ==========================================
size      d_model  d_ff   layers  heads  d_kv  like
========  =======  =====  ======  =====  ====  ==========================================
tiny      64       128    2 + 2   4      16    CPU tests (~0.3M parameters)
small     512      2048   6 + 6   8      64    CodeT5-small (60M with its 32k vocabulary)
base      768      3072   12 + 12 12     64    CodeT5+ 220M (the paper's default)
large     1024     4096   24 + 24 16     64    CodeT5+ 770M
========  =======  =====  ======  =====  ====  ==========================================

Anything that is not a size name is a pretrained model name or local directory, loaded with
``T5ForConditionalGeneration.from_pretrained``; ``random_weights=True`` keeps only its configuration
(ablation A4, no pretraining).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: T5Config keyword arguments of each named size (T5 v1.0 style: ReLU feed-forward, tied embeddings)
SIZES: dict[str, dict] = {
    "tiny": {"d_model": 64, "d_ff": 128, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4, "d_kv": 16},
    "small": {"d_model": 512, "d_ff": 2048, "num_layers": 6, "num_decoder_layers": 6, "num_heads": 8, "d_kv": 64},
    "base": {"d_model": 768, "d_ff": 3072, "num_layers": 12, "num_decoder_layers": 12, "num_heads": 12, "d_kv": 64},
    "large": {"d_model": 1024, "d_ff": 4096, "num_layers": 24, "num_decoder_layers": 24, "num_heads": 16, "d_kv": 64},
}

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto``/``None``: CUDA when available, else CPU; anything else as given.  Asking for CUDA on a
    machine without it is a :class:`~codeit.errors.UserError` (at once, not at the first tensor)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        from codeit.errors import UserError

        raise UserError(f"policy.device={device} but torch sees no CUDA device (torch {torch.__version__}, "
                        f"CUDA build: {torch.version.cuda or 'no'}); run on a GPU machine with a CUDA build of "
                        "torch, or use policy.device=cpu")
    return resolved


#: on a CPU, ``precision: auto`` uses bf16 for models at least this wide (where bf16 is native): measured
#: faster for small (d_model 512) and slower for tiny (64), whose steps are too small to gain from
#: bf16 matrix products and pay for the casts (docs/policy.md, benchmarks/bench_policy.py)
CPU_BF16_MIN_D_MODEL = 256


def resolve_precision(precision: str, device: torch.device, d_model: int | None = None) -> str:
    """``auto``: bf16 mixed precision on CUDA (fp16 where the card lacks bf16); on a CPU bf16 where its
    matrix units do bf16 natively (:func:`codeit.policy.cpu.cpu_has_native_bf16`) and the model is at
    least :data:`CPU_BF16_MIN_D_MODEL` wide, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and d_model is not None and d_model >= CPU_BF16_MIN_D_MODEL:
        from codeit.policy.cpu import cpu_has_native_bf16

        if cpu_has_native_bf16():
            return "bf16"
    return "fp32"


def autocast_dtype(precision: str) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def round_up(n: int, multiple: int) -> int:
    return n if multiple <= 1 else -(-n // multiple) * multiple


@dataclass
class ModelSpec:
    """What to build: a size name or a pretrained name/path, and how."""

    model: str = "tiny"
    random_weights: bool = False
    dropout: float | None = None
    #: pad the vocabulary (embedding rows) to a multiple of this, for tensor cores
    vocab_multiple: int = 8


def is_size(name: str) -> bool:
    return name in SIZES


def make_model(spec: ModelSpec, tokenizer, seed: int | None = None):
    """Build the ``T5ForConditionalGeneration`` described by ``spec`` for ``tokenizer`` (on the CPU)."""
    from transformers import T5Config, T5ForConditionalGeneration

    if seed is not None:
        torch.manual_seed(seed)
    if is_size(spec.model):
        kwargs = dict(SIZES[spec.model])
        if spec.dropout is not None:
            kwargs["dropout_rate"] = spec.dropout
        config = T5Config(
            vocab_size=round_up(len(tokenizer), spec.vocab_multiple),
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id, feed_forward_proj="relu",
            tie_word_embeddings=True, **kwargs)
        return T5ForConditionalGeneration(config)
    if spec.random_weights:
        config = T5Config.from_pretrained(spec.model)
        if spec.dropout is not None:
            config.dropout_rate = spec.dropout
        model = T5ForConditionalGeneration(config)
    else:
        extra = {} if spec.dropout is None else {"dropout_rate": spec.dropout}
        model = T5ForConditionalGeneration.from_pretrained(spec.model, **extra)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(round_up(len(tokenizer), spec.vocab_multiple))
    return model


def count_parameters(model) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
