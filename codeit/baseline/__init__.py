"""The mutation baseline (DESIGN.md §4): mutate seed programs through the ``codeit_mutate`` hooks, score
every mutant on every evaluation task, report the solve rate against the number of mutants.

``generation`` (the mutant sequence and its chunk files), ``scoring`` (the passes and their resumable
score files), ``report`` (the curve, the PNG, ``solutions.json``, ``summary.json``), ``pool`` and
``handler`` (the worker processes, parent and worker side), ``pipeline`` (settings, inputs, the run)
and ``cli`` (``codeit mutation-baseline``).
"""
