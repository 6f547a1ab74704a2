"""codeit: CodeIt (self-improving program synthesis on ARC) as a plugin-based experiment framework.

Kept import-light on purpose: executor worker processes import :mod:`codeit.dsl` only, never torch.
"""

import warnings

__version__ = "0.1.0"

# sacred 0.8 imports pkg_resources, which warns about its own deprecation on every start
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
