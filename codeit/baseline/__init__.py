"""The mutation baseline (``codeit mutation-baseline``): mutated training programs scored on every
evaluation task, reported as a solve-rate curve against the number of mutated programs."""
