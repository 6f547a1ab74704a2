"""CPU specifics of the policy: torch threads, bf16 support, and a leaner attention and dropout for training.

On a CPU the tiny and small models spend most of a training step in the encoder's self-attention over
inputs of a few hundred tokens (every score is materialised: T5's learned position bias needs its
gradient, which rules out the fused kernel) and in drawing dropout masks (``bernoulli_`` draws a double
per element on CPUs other than Intel's).  :func:`use_cpu_kernels` swaps in

* ``codeit_cpu`` attention: the same computation as transformers' ``sdpa`` attention (position bias,
  padding/causal masks, attention dropout), done in place where autograd allows, with a faster mask;
  where no gradient reaches the bias and no dropout is active (sampling, cross-attention) it hands over
  to ``sdpa`` itself, whose fused CPU kernel is fastest there;
* :class:`FastDropout` for every ``nn.Dropout``: the same Bernoulli(1 - p) mask and 1 / (1 - p) scaling,
  drawn as float32 uniforms from torch's global generator (one 32-bit draw per element instead of two),
  so runs stay reproducible and checkpoints capture the state as before.

Nothing here changes what the model computes or saves (``save_pretrained`` writes the same files).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import types
from collections.abc import Iterator

import torch
from torch import nn

#: the attention implementation name registered with transformers by :func:`register_attention`
ATTENTION = "codeit_cpu"
#: /proc/cpuinfo flags of native bf16 arithmetic (AVX512-BF16: Zen 4+, Cooper/Sapphire Lake; AMX)
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


# -- threads ------------------------------------------------------------------------------------------
def available_cores() -> int:
    """Physical CPU cores this process may run on: the CPUs of its affinity mask, hyperthreads of one
    core counted once (as torch's own default counts them; a second hyperthread rarely speeds up
    matrix code)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return max(1, torch.get_num_threads())
    cores = set()
    for cpu in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
                cores.add(f.read().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` torch intra-op threads (None: unchanged), restoring the count after."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield before
        return
    torch.set_num_threads(max(1, int(n)))
    try:
        yield int(n)
    finally:
        torch.set_num_threads(before)


# -- bf16 ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True where bf16 matrix products run natively (AVX512-BF16 or AMX on x86-64) and torch's oneDNN
    can use them; False elsewhere (ARM, older x86, other OSes), where bf16 is emulated and slower."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if not (BF16_FLAGS & cpu_flags()):
        return False
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        a = torch.ones(4, 8, dtype=torch.bfloat16)
        return bool(torch.equal((a @ a.T).float(), torch.full((4, 4), 8.0)))
    except RuntimeError:
        return False


# -- dropout ------------------------------------------------------------------------------------------
def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str) -> torch.Tensor:
    """A boolean Bernoulli(1 - p) mask drawn from torch's global generator."""
    return torch.rand(shape, device=device) >= p


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``nn.functional.dropout`` with the mask of :func:`keep_mask` (same distribution, cheaper on CPU)."""
    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    factor = keep_mask(x.shape, p, x.device).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * factor


class FastDropout(nn.Dropout):
    """``nn.Dropout`` drawing its mask with :func:`fast_dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def use_fast_dropout(model: nn.Module) -> int:
    """Make every ``nn.Dropout`` of ``model`` a :class:`FastDropout` (same ``p``); returns how many."""
    count = 0
    for module in model.modules():
        if type(module) is nn.Dropout:
            module.__class__ = FastDropout
            count += 1
    return count


# -- attention ----------------------------------------------------------------------------------------
def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``mask`` (boolean: True = attend; or already additive) as an additive mask of ``dtype``: 0 where
    attended, the most negative value elsewhere — what sdpa's math path adds for a boolean mask.

    A boolean (batch, 1, queries, keys) mask whose rows are all equal (a padding mask, as transformers
    builds for the encoder and for cross-attention) becomes (batch, 1, 1, keys), which adds in a fraction
    of the time.  The result is kept on the mask tensor, which every layer of a forward pass shares."""
    cached = getattr(mask, "_codeit_additive", None)
    if cached is not None and cached.dtype == dtype:
        return cached
    if mask.dtype != torch.bool:
        out = mask.to(dtype)
    else:
        base = mask
        if mask.dim() == 4 and mask.shape[2] > 1 and torch.equal(mask, mask[:, :, :1].expand_as(mask)):
            base = mask[:, :, :1]
        out = torch.zeros(base.shape, dtype=dtype, device=mask.device).masked_fill_(~base, torch.finfo(dtype).min)
    mask._codeit_additive = out
    return out


def cpu_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                  is_causal: bool | None = None, position_bias: torch.Tensor | None = None,
                  **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' ``sdpa`` attention, computed without the fused kernel when that kernel would not be
    used anyway (a position bias that needs its gradient, or attention dropout in training)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    active_dropout = dropout > 0.0 and module.training
    bias_grad = position_bias is not None and position_bias.requires_grad and torch.is_grad_enabled()
    q_len, kv_len = query.shape[2], key.shape[2]
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = bool(causal) and q_len > 1 and attention_mask is None
    if (not (active_dropout or bias_grad) or kwargs.get("output_attentions")
            or getattr(module, "num_key_value_groups", 1) > 1 or (causal and kv_len != q_len)):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, position_bias=position_bias, **kwargs)
    scores = torch.matmul(query, key.transpose(-1, -2))  # a fresh tensor: in-place below is autograd-safe
    if scaling is not None and scaling != 1.0:
        scores.mul_(scaling)
    if position_bias is not None:
        scores.add_(position_bias.to(scores.dtype))
    if attention_mask is not None:
        scores.add_(additive_mask(attention_mask, scores.dtype))
    elif causal:
        future = torch.ones(q_len, kv_len, dtype=torch.bool, device=scores.device).triu_(1)
        scores.masked_fill_(future, torch.finfo(scores.dtype).min)
    if scores.dtype == torch.float32:
        probs = torch.softmax(scores, dim=-1)
    else:  # bf16/fp16 scores: normalise in fp32, as autocast does on CUDA
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    if active_dropout:
        probs = fast_dropout(probs, dropout)
    out = torch.matmul(probs, value)
    return out.transpose(1, 2).contiguous(), None


def toeplitz_position_bias(self, query_length: int, key_length: int, device=None,
                           past_seen_tokens: int = 0) -> torch.Tensor:
    """``T5Attention.compute_bias`` computed from the ``query_length + key_length - 1`` distinct relative
    positions: the bias depends on (key - query) only, so it is those values laid out along diagonals.
    The same values as transformers' version, whose embedding lookup of one bucket per (query, key) pair
    has a backward pass (a scatter of length**2 gradients into 32 rows) that took longer than the rest
    of the attention for long inputs; here the gradient is a sum along diagonals."""
    if device is None:
        device = self.relative_attention_bias.weight.device
    first = -(query_length - 1 + past_seen_tokens)  # key 0 seen from the last query
    relative = torch.arange(first, key_length - past_seen_tokens, dtype=torch.long, device=device)
    buckets = self._relative_position_bucket(relative, bidirectional=not self.is_decoder,
                                             num_buckets=self.relative_attention_num_buckets,
                                             max_distance=self.relative_attention_max_distance)
    values = self.relative_attention_bias(buckets).t()  # (heads, query_length + key_length - 1)
    # query i, key j: values[:, (query_length - 1 - i) + j], i.e. window query_length - 1 - i, flipped
    return values.unfold(1, key_length, 1).flip(1).unsqueeze(0)


def use_toeplitz_position_bias(model: nn.Module) -> int:
    """Give every T5 attention module with a relative position bias :func:`toeplitz_position_bias` as its
    ``compute_bias``; returns how many."""
    count = 0
    for module in model.modules():
        if getattr(module, "has_relative_attention_bias", False) and hasattr(module, "_relative_position_bucket"):
            module.compute_bias = types.MethodType(toeplitz_position_bias, module)
            count += 1
    return count


@functools.lru_cache(maxsize=1)
def register_attention() -> str:
    """Register :func:`cpu_attention` (with sdpa's mask format) under :data:`ATTENTION` with transformers."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, cpu_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    return ATTENTION


def use_cpu_kernels(model: nn.Module) -> bool:
    """Switch a T5 model to :func:`cpu_attention` and :class:`FastDropout` (for training and sampling on
    a CPU); False, changing nothing, when the model does not use transformers' sdpa attention."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) not in ("sdpa", ATTENTION):
        return False
    model.set_attn_implementation(register_attention())
    use_fast_dropout(model)
    use_toeplitz_position_bias(model)
    return True


def use_default_kernels(model: nn.Module) -> None:
    """Undo :func:`use_cpu_kernels` (before moving the model to a GPU)."""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "_attn_implementation", None) == ATTENTION:
        model.set_attn_implementation("sdpa")
    for module in model.modules():
        if type(module) is FastDropout:
            module.__class__ = nn.Dropout
        if "compute_bias" in vars(module):
            del module.compute_bias
