"""Incremental T5 decoding for sampling: one decoder step for every live sequence of a batch, with far
less work per step than calling the Hugging Face model.

* The ``n`` sequences sampled for one input share its cross-attention keys and values: they are projected
  once per input and attended to by all its sequences in one kernel call (the model call would repeat the
  encoder states ``n`` times and read every copy at every step).
* The self-attention cache is one tensor per layer, written in place and grown by doubling; no cache or
  mask objects, no output records, no per-step mask construction.
* Logits are computed for the allowed tokens only (decoding is restricted to them anyway), so the output
  projection and the softmax are over ~300 columns instead of the whole vocabulary.

:class:`T5Weights` takes the weights of a ``T5ForConditionalGeneration`` (T5 v1.0/v1.1 and CodeT5
layouts: ReLU or gated feed-forward, relative position bias in the first self-attention layer, with or
without output scaling) once per sampling call, cast to the compute dtype (fp32 or bf16);
:class:`T5DecoderState` holds one batch's caches and runs :meth:`T5DecoderState.step`.  The computation
is the model's own (tested against it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def supports(model) -> bool:
    """Whether :class:`T5Weights` can read ``model`` (a T5 encoder-decoder with the usual module layout)."""
    try:
        from transformers import T5ForConditionalGeneration
    except ImportError:  # pragma: no cover
        return False
    if not isinstance(model, T5ForConditionalGeneration):
        return False
    block = model.get_decoder().block[0]
    return len(block.layer) == 3 and hasattr(block.layer[0].SelfAttention, "compute_bias")


#: cross-attention chunks waste at most this share of their key positions on padding
CHUNK_WASTE = 0.25


def chunk_lengths(lengths: list[int], max_waste: float = CHUNK_WASTE) -> list[tuple[int, int, int]]:
    """Cut consecutive inputs of ``lengths`` into chunks ``(start, stop, longest)`` in which padding to the
    longest input wastes at most ``max_waste`` of the key positions."""
    chunks: list[tuple[int, int, int]] = []
    start, longest, total = 0, 0, 0
    for i, length in enumerate(lengths):
        new_longest = max(longest, length)
        if i > start and new_longest * (i - start + 1) * (1.0 - max_waste) > total + length:
            chunks.append((start, i, longest))
            start, new_longest, total = i, length, 0
        longest = new_longest
        total += length
    if lengths:
        chunks.append((start, len(lengths), longest))
    return chunks


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """T5LayerNorm: scale by the root mean square (computed in fp32), no mean subtraction, no bias."""
    variance = x.float().pow(2).mean(-1, keepdim=True)
    return weight * (x.float() * torch.rsqrt(variance + eps)).to(weight.dtype)


@dataclass
class _Layer:
    ln_self: torch.Tensor
    qkv: torch.Tensor  # (3 * inner, d): q, k and v stacked
    o_self: torch.Tensor
    ln_cross: torch.Tensor
    q_cross: torch.Tensor
    k_cross: torch.Tensor
    v_cross: torch.Tensor
    o_cross: torch.Tensor
    ln_ff: torch.Tensor
    wi: tuple[torch.Tensor, ...]  # (wi,) or (wi_0, wi_1) for a gated feed-forward
    wo: torch.Tensor


class T5Weights:
    """The decoder weights of a T5 model in the compute ``dtype``, and the output rows of ``columns``."""

    def __init__(self, model, columns: torch.Tensor | None, dtype: torch.dtype = torch.float32,
                 max_steps: int = 512):
        config = model.config
        decoder = model.get_decoder()
        self.dtype = dtype
        self.heads = config.num_heads
        self.d_kv = config.d_kv
        self.eps = config.layer_norm_epsilon
        self.scaling = float(getattr(decoder.block[0].layer[0].SelfAttention, "scaling", 1.0) or 1.0)
        self.scale_output = bool(getattr(config, "scale_decoder_outputs", getattr(config, "tie_word_embeddings", True)))
        self.d_model = config.d_model

        def w(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(dtype)

        self.embed = w(decoder.embed_tokens.weight)
        out = model.get_output_embeddings().weight.detach()
        self.columns = columns
        self.lm_head = w(out if columns is None else out.index_select(0, columns.to(out.device)))
        self.layers: list[_Layer] = []
        for block in decoder.block:
            sa, ca, ff = block.layer[0], block.layer[1], block.layer[2]
            dense = ff.DenseReluDense
            wi = (w(dense.wi_0.weight), w(dense.wi_1.weight)) if hasattr(dense, "wi_0") else (w(dense.wi.weight),)
            self.layers.append(_Layer(
                ln_self=w(sa.layer_norm.weight),
                qkv=w(torch.cat([sa.SelfAttention.q.weight, sa.SelfAttention.k.weight, sa.SelfAttention.v.weight])),
                o_self=w(sa.SelfAttention.o.weight), ln_cross=w(ca.layer_norm.weight),
                q_cross=w(ca.EncDecAttention.q.weight), k_cross=w(ca.EncDecAttention.k.weight),
                v_cross=w(ca.EncDecAttention.v.weight), o_cross=w(ca.EncDecAttention.o.weight),
                ln_ff=w(ff.layer_norm.weight), wi=wi, wo=w(dense.wo.weight)))
        self.act = decoder.block[0].layer[2].DenseReluDense.act
        self.ln_final = w(decoder.final_layer_norm.weight)
        # relative position bias of a query at step t over keys 0..t: by_distance[:, max_steps-1-t:]
        attention = decoder.block[0].layer[0].SelfAttention
        with torch.no_grad():
            bias = attention.compute_bias(1, max_steps, device=self.embed.device, past_seen_tokens=max_steps - 1)
        self.max_steps = max_steps
        self.bias = bias[0, :, 0, :].detach().to(dtype).contiguous()  # (heads, max_steps)

    def cross_keys_values(self, encoder_states: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the cross-attention keys and values of ``encoder_states`` (inputs, length, d_model):
        (inputs, heads, length, d_kv) each."""
        g, length, _ = encoder_states.shape
        x = encoder_states.to(self.dtype)
        out = []
        for layer in self.layers:
            k = F.linear(x, layer.k_cross).view(g, length, self.heads, self.d_kv).transpose(1, 2)
            v = F.linear(x, layer.v_cross).view(g, length, self.heads, self.d_kv).transpose(1, 2)
            out.append((k.contiguous(), v.contiguous()))
        return out


class T5DecoderState:
    """One batch being decoded: ``n`` rows per input, caches, and the row -> input grouping.

    ``encoder_states`` (inputs, length, d_model) and ``encoder_mask`` (inputs, length; nonzero = a real
    token) come from the model's encoder, run once per input.  Rows are ordered by input; :meth:`keep`
    drops rows (and inputs left without rows) from every cache.
    """

    def __init__(self, weights: T5Weights, encoder_states: torch.Tensor, encoder_mask: torch.Tensor, n: int,
                 capacity: int = 64):
        self.w = weights
        device = encoder_states.device
        g = encoder_states.shape[0]
        self.cross = weights.cross_keys_values(encoder_states)
        mask = encoder_mask.bool()
        self.lengths = mask.sum(1)
        # additive (0 / most negative) cross-attention mask: (inputs, 1, 1, length)
        self.cross_mask = torch.zeros(mask.shape, dtype=weights.dtype, device=device).masked_fill_(
            ~mask, torch.finfo(weights.dtype).min)[:, None, None, :]
        self.group = torch.arange(g, device=device).repeat_interleave(n)
        self.rows = g * n
        self.steps = 0
        self.capacity = max(1, min(capacity, weights.max_steps))
        shape = (self.rows, weights.heads, self.capacity, weights.d_kv)
        self.cache = [(torch.empty(shape, dtype=weights.dtype, device=device),
                       torch.empty(shape, dtype=weights.dtype, device=device)) for _ in weights.layers]
        self._layout()

    def _layout(self) -> None:
        """Where each row sits in the (inputs, rows per input) grid used by cross-attention, and the
        chunks of inputs whose keys are cut to their longest input (inputs of a batch differ in length:
        attending over the batch's longest one would waste most of the work)."""
        counts = torch.bincount(self.group, minlength=self.cross_mask.shape[0])
        self.width = int(counts.max())
        if bool((counts == self.width).all()):
            self.slots = None  # every input has ``width`` rows: the grid is the rows themselves
        else:
            starts = torch.cumsum(counts, 0) - counts
            position = torch.arange(self.rows, device=self.group.device) - starts[self.group]
            self.slots = self.group * self.width + position
        self.chunks = chunk_lengths(self.lengths.tolist(), max_waste=CHUNK_WASTE)

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the rows ``index`` (ascending), dropping inputs that have none left."""
        for i, (k, v) in enumerate(self.cache):
            self.cache[i] = (k.index_select(0, index), v.index_select(0, index))
        group = self.group.index_select(0, index)
        present = torch.zeros(self.cross_mask.shape[0], dtype=torch.bool, device=group.device)
        present[group] = True
        if not bool(present.all()):
            inputs = present.nonzero().squeeze(1)
            renumber = torch.cumsum(present.long(), 0) - 1
            group = renumber[group]
            self.cross = [(k.index_select(0, inputs), v.index_select(0, inputs)) for k, v in self.cross]
            self.cross_mask = self.cross_mask.index_select(0, inputs)
            self.lengths = self.lengths.index_select(0, inputs)
        self.group = group
        self.rows = len(index)
        self._layout()

    def _grow(self) -> None:
        capacity = min(2 * self.capacity, self.w.max_steps)
        for i, (k, v) in enumerate(self.cache):
            shape = (k.shape[0], k.shape[1], capacity, k.shape[3])
            k2, v2 = k.new_empty(shape), v.new_empty(shape)
            k2[:, :, :self.capacity] = k
            v2[:, :, :self.capacity] = v
            self.cache[i] = (k2, v2)
        self.capacity = capacity

    def _cross_attention(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        w = self.w
        g = keys.shape[0]
        if self.slots is None:
            grid = q.view(g, self.width, w.heads, w.d_kv)
        else:
            grid = q.new_zeros(g * self.width, w.heads, w.d_kv)
            grid[self.slots] = q
            grid = grid.view(g, self.width, w.heads, w.d_kv)
        grid = grid.transpose(1, 2)  # (inputs, heads, width, d_kv)
        parts = []
        for start, stop, length in self.chunks:
            parts.append(F.scaled_dot_product_attention(
                grid[start:stop], keys[start:stop, :, :length], values[start:stop, :, :length],
                attn_mask=self.cross_mask[start:stop, :, :, :length], scale=w.scaling))
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        out = out.transpose(1, 2).reshape(g * self.width, w.heads * w.d_kv)
        return out if self.slots is None else out[self.slots]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row (the previous output, or the decoder start); fp32 logits (rows, columns)."""
        w = self.w
        t = self.steps
        if t >= w.max_steps:
            raise ValueError(f"more than {w.max_steps} decoder steps")
        if t >= self.capacity:
            self._grow()
        rows = self.rows
        x = F.embedding(tokens, w.embed)
        bias = w.bias[:, w.max_steps - 1 - t:].view(1, w.heads, 1, t + 1)
        for layer, (cache_k, cache_v), (cross_k, cross_v) in zip(w.layers, self.cache, self.cross):
            h = _rms_norm(x, layer.ln_self, w.eps)
            qkv = F.linear(h, layer.qkv).view(rows, 3, w.heads, w.d_kv)
            cache_k[:, :, t] = qkv[:, 1]
            cache_v[:, :, t] = qkv[:, 2]
            scores = torch.matmul(qkv[:, 0].unsqueeze(2), cache_k[:, :, :t + 1].transpose(-1, -2))
            if w.scaling != 1.0:
                scores = scores * w.scaling
            probs = torch.softmax(scores + bias, dim=-1, dtype=torch.float32).to(w.dtype)
            att = torch.matmul(probs, cache_v[:, :, :t + 1])
            x = x + F.linear(att.reshape(rows, w.heads * w.d_kv), layer.o_self)
            h = _rms_norm(x, layer.ln_cross, w.eps)
            q = F.linear(h, layer.q_cross).view(rows, w.heads, w.d_kv)
            x = x + F.linear(self._cross_attention(q, cross_k, cross_v), layer.o_cross)
            h = _rms_norm(x, layer.ln_ff, w.eps)
            if len(layer.wi) == 2:
                inner = w.act(F.linear(h, layer.wi[0])) * F.linear(h, layer.wi[1])
            else:
                inner = w.act(F.linear(h, layer.wi[0]))
            x = x + F.linear(inner, layer.wo)
        x = _rms_norm(x, w.ln_final, w.eps)
        if w.scale_output:
            x = x * (w.d_model ** -0.5)
        self.steps = t + 1
        return F.linear(x, w.lm_head).float()
