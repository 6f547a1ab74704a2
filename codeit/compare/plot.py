"""The curves of a comparison: one panel per metric, per arm the mean over its runs at each
meta-iteration with a ±std band (where at least two runs reached that meta-iteration).

Drawn with matplotlib's ``Figure`` API, never pyplot: no GUI backend is chosen or needed, so the
plot is made the same way on a headless server, in a test and inside a sweep.
"""

from __future__ import annotations

import io
import math

from codeit.compare.arms import Comparison, is_fraction

__all__ = ["curves_figure", "curves_png"]


def curves_figure(comparison: Comparison):
    """The figure (a ``matplotlib.figure.Figure``): panels in metric order, arms in table order;
    x is the meta-iteration counted from 1 (Sacred's step + 1, as the console and performance.csv)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    metrics = comparison.metrics
    cols = min(len(metrics), 3)
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows + 0.6), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        scale = 100.0 if is_fraction(metric) else 1.0
        for k, arm in enumerate(comparison.arms):
            curve = arm.curve(metric)
            if not curve:
                continue
            x = [step + 1 for step, _ in curve]
            mean = [stat.mean * scale for _, stat in curve]
            style = "--" if arm is comparison.control else "-"
            control = " (control)" if arm is comparison.control else ""
            (line,) = ax.plot(x, mean, style, marker="o", markersize=3, color=f"C{k % 10}",
                              label=f"{arm.label}{control} (n={len(arm.runs)})")
            band = [(xi, (s.mean - s.std) * scale, (s.mean + s.std) * scale)
                    for xi, (_, s) in zip(x, curve, strict=True) if s.std is not None]
            if band:
                ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band],
                                color=line.get_color(), alpha=0.2, linewidth=0)
        if scale != 1.0:  # a rate: from 0, and at least up to 1 %
            ax.set_ylim(0, max(ax.get_ylim()[1], 1.0))
        ax.set_title(f"{metric} (%)" if scale != 1.0 else metric, fontsize=10)
        ax.set_xlabel("meta-iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    legend = {}  # label -> handle, over every panel (an arm may lack the first panel's metric)
    for ax in axes[:len(metrics)]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8, frameon=False)
    fig.suptitle("mean over runs, band: ± std", fontsize=10)
    fig.tight_layout(rect=(0, 0.02 + 0.04 * math.ceil(len(labels) / 3), 1, 1))
    return fig


def curves_png(comparison: Comparison) -> bytes:
    """:func:`curves_figure` as PNG bytes."""
    out = io.BytesIO()
    curves_figure(comparison).savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
