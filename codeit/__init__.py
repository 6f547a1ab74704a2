"""codeit: CodeIt (self-improving program synthesis on ARC) as a plugin-based experiment framework.

Kept import-light on purpose: executor worker processes import :mod:`codeit.dsl` only, never torch.
"""

__version__ = "0.1.0"
