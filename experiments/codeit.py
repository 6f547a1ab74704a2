#!/usr/bin/env python
"""CodeIt as a Sacred experiment: ``python experiments/codeit.py with smoke [a3_no_priority ...]``.

The default config carries the paper's values; named configs select the ablations (a1_no_exit ...
a6_no_mutation), the mutation baseline, model sizes, data sources and the CPU ``smoke`` size.
``print_config``, ``-m HOST:PORT:DB`` (record to MongoDB), ``resume_from=<run dir or id>`` and the
rest of Sacred's command line work as usual; see docs/experiments.md.
"""

import os
import sys

# This file is called codeit.py: keep its folder off the import path so that `codeit` is the package.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

from codeit.experiment import make_experiment

ex = make_experiment()

if __name__ == "__main__":
    ex.run_commandline()
