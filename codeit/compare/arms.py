"""Runs grouped into arms, and each arm's final metrics as mean ± std over its runs (seeds).

An *arm* is one experimental condition: by default the runs with the same named configs (in
order) and the same command-line values, apart from values that only vary a repetition or its
length (:data:`REPETITION_KEYS`: the seed, ``resume_from``, ``n_iterations``, threads, ...).  Each
run contributes its *final* value of a metric -- the value at the last meta-iteration it logged --
and an arm reports the mean and the sample standard deviation (``n - 1``) of those values.

A control arm turns this into the learning criterion of the issue: an arm beats the control on a
metric when the difference of means exceeds the *spread*, defined as the sum of the two arms'
standard deviations -- that is, when the arms' ``mean ± std`` intervals do not overlap (the bands
of the curves at the last meta-iteration are apart).  The sum, not the larger std, because both
means carry seed noise; with fewer than two runs in either arm there is no spread and no verdict.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from codeit.compare.records import RunRecord
from codeit.config import dotted_keys
from codeit.errors import UserError, did_you_mean

__all__ = ["DEFAULT_GROUP_BY", "DEFAULT_METRICS", "REPETITION_KEYS", "Arm", "Comparison", "Difference",
           "Stat", "arm_label", "compare_runs", "is_fraction"]

#: reported unless metrics are named: the policy-only and cumulative solve rates and solved counts
#: (``_ever``: solved at some meta-iteration), and the policy's best demonstration accuracy (the
#: learning signal while nothing is solved yet)
DEFAULT_METRICS = ("solve_rate_policy_ever", "solve_rate_policy_only", "solve_rate_cumulative",
                   "solved_policy_ever", "solved_policy_only", "solved_cumulative", "policy_best_demo_accuracy")
#: the fallback when none of those was logged (the mutation baseline logs only these)
FALLBACK_METRICS = ("solve_rate", "solved")
#: group-by words: ``named_configs`` (the run's named configs in order) and ``updates`` (its
#: command-line values, less :data:`REPETITION_KEYS`); any other word is a dotted config key
DEFAULT_GROUP_BY = ("named_configs", "updates")
#: config updates that make another repetition of the same arm, not another arm
REPETITION_KEYS = frozenset({"seed", "policy.seed", "resume_from", "work_dir", "n_iterations", "threads",
                             "execution.workers", "policy.progress", "baseline.progress"})


def is_fraction(metric: str) -> bool:
    """Rates and accuracies are fractions of the search tasks: shown in per cent."""
    return "rate" in metric or "accuracy" in metric


def _show(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def arm_label(run: RunRecord, group_by: Sequence[str] = DEFAULT_GROUP_BY) -> str:
    """The arm of ``run`` under ``group_by``, e.g. ``smoke a2_no_relabeling policy.lr=0.001``."""
    parts: list[str] = []
    for key in group_by:
        if key == "named_configs":
            parts += run.named_configs
        elif key == "updates":
            parts += [f"{k}={_show(v)}" for k, v in sorted(run.config_updates.items()) if k not in REPETITION_KEYS]
        else:
            try:
                parts.append(f"{key}={_show(run.config_value(key))}")
            except KeyError:
                parts.append(f"{key}=(unset)")
    return " ".join(parts) or "(default)"


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation of ``n`` values (``std`` is None below two values)."""

    n: int
    mean: float | None
    std: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        values = list(values)
        return cls(len(values), statistics.fmean(values) if values else None,
                   statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class Difference:
    """An arm's mean minus the control's, the spread (sum of both stds) and the verdict:
    ``higher``/``lower`` when the difference exceeds the spread, ``within spread``, or ``n/a``."""

    diff: float | None
    spread: float | None
    verdict: str

    @classmethod
    def of(cls, arm: Stat, control: Stat) -> Difference:
        if arm.mean is None or control.mean is None:
            return cls(None, None, "n/a")
        # equal means computed from different runs differ by float noise (1e-15): that is no difference
        diff = round(arm.mean - control.mean, 12)
        if arm.std is None or control.std is None:
            return cls(diff, None, "n/a")
        spread = arm.std + control.std
        verdict = "higher" if diff > spread else "lower" if diff < -spread else "within spread"
        return cls(diff, spread, verdict)


@dataclass
class Arm:
    """The runs of one condition (by run number) and their statistics."""

    label: str
    runs: list[RunRecord] = field(default_factory=list)

    def finals(self, metric: str) -> list[float]:
        """The final value of ``metric`` of every run that logged it."""
        return [v for v in (run.final(metric) for run in self.runs) if v is not None]

    def stat(self, metric: str) -> Stat:
        return Stat.of(self.finals(metric))

    def curve(self, metric: str) -> list[tuple[int, Stat]]:
        """Per step, the statistics over the runs that logged ``metric`` at that step."""
        by_step: dict[int, list[float]] = {}
        for run in self.runs:
            for step, value in run.metrics.get(metric, ()):
                by_step.setdefault(step, []).append(value)
        return [(step, Stat.of(values)) for step, values in sorted(by_step.items())]

    @property
    def seeds(self) -> list:
        return [run.seed for run in self.runs]

    @property
    def iterations(self) -> tuple[int, int]:
        lengths = [run.iterations for run in self.runs]
        return min(lengths), max(lengths)

    def notes(self, metrics: Iterable[str] = ()) -> list[str]:
        """What makes the arm's numbers less comparable: unfinished runs, runs of different
        lengths, a seed used twice, a metric some runs lack."""
        notes = []
        unfinished = [run for run in self.runs if run.status != "COMPLETED"]
        if unfinished:
            notes.append("not all completed: " + ", ".join(f"run {r.id} {r.status}" for r in unfinished))
        low, high = self.iterations
        if low != high:
            notes.append(f"lengths differ: {low}-{high} iterations")
        seeds = [s for s in self.seeds if s is not None]
        if len(set(map(_show, seeds))) < len(seeds):
            notes.append("a seed repeats")
        for metric in metrics:
            n = len(self.finals(metric))
            if 0 < n < len(self.runs):
                notes.append(f"{metric} in {n} of {len(self.runs)} runs")
        return notes


@dataclass
class Comparison:
    """Arms (in the order of their first run), the metrics compared, the control arm if any, and
    notes on the runs left out."""

    arms: list[Arm]
    metrics: list[str]
    control: Arm | None = None
    notes: list[str] = field(default_factory=list)

    def against_control(self, arm: Arm, metric: str) -> Difference | None:
        if self.control is None or arm is self.control:
            return None
        return Difference.of(arm.stat(metric), self.control.stat(metric))

    @property
    def runs(self) -> list[RunRecord]:
        return [run for arm in self.arms for run in arm.runs]




def _check_group_by(runs: Sequence[RunRecord], group_by: Sequence[str]) -> None:
    """A config key no run has would put every run in one arm without a word: an error instead."""
    for key in group_by:
        if key in ("named_configs", "updates"):
            continue
        if not any(_has(run, key) for run in runs):
            known = {k for run in runs for k in dotted_keys(run.config)}
            raise UserError(f"--group-by {key!r}: no selected run has this config key{did_you_mean(key, known)} "
                            "(group-by words: named_configs, updates, or dotted config keys)")


def _has(run: RunRecord, key: str) -> bool:
    try:
        run.config_value(key)
    except KeyError:
        return False
    return True


def _choose_metrics(runs: Sequence[RunRecord], metrics: Sequence[str] | None) -> list[str]:
    logged = {name for run in runs for name in run.metrics}
    if metrics:
        unknown = [m for m in metrics if m not in logged]
        if unknown:
            raise UserError(f"no selected run logged the metric {unknown[0]!r}{did_you_mean(unknown[0], logged)}; "
                            f"they logged: {', '.join(sorted(logged))}")
        return list(dict.fromkeys(metrics))
    chosen = [m for m in DEFAULT_METRICS if m in logged] or [m for m in FALLBACK_METRICS if m in logged]
    if not chosen:
        raise UserError(f"the runs logged none of the default metrics; name some with --metrics (they logged: "
                        f"{', '.join(sorted(logged))})")
    return chosen


def compare_runs(runs: Sequence[RunRecord], metrics: Sequence[str] | None = None,
                 group_by: Sequence[str] | Callable[[RunRecord], str] = DEFAULT_GROUP_BY,
                 control: str | None = None, notes: Iterable[str] = ()) -> Comparison:
    """Group ``runs`` into arms and choose the metrics: the public entry point (``codeit compare``
    and a sweep call it on the runs they read).

    ``group_by``: group-by words (:data:`DEFAULT_GROUP_BY`, config keys) or a function giving a run's
    arm; ``metrics``: None for :data:`DEFAULT_METRICS` (those any run logged); ``control``: the label
    of the control arm; ``notes``: what the caller left out, kept with the comparison.
    """
    if not runs:
        raise UserError("no recorded runs to compare (check the run ids, --status, --with and --where)")
    if not callable(group_by):
        _check_group_by(runs, group_by)
    label = group_by if callable(group_by) else (lambda run: arm_label(run, group_by))
    arms: dict[str, Arm] = {}
    for run in sorted(runs, key=lambda r: (r.number is None, r.number or 0, r.id)):
        arms.setdefault(label(run), Arm(label(run))).runs.append(run)
    chosen = _choose_metrics(runs, metrics)
    control_arm = None
    if control is not None:
        if control not in arms:
            raise UserError(f"no arm {control!r}{did_you_mean(control, arms)}; the arms are: "
                            + "; ".join(repr(a) for a in arms))
        control_arm = arms[control]
    return Comparison(list(arms.values()), chosen, control_arm, list(notes))
