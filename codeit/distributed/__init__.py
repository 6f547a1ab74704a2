"""Beyond one machine, on Ray: the execution backend's actors and sweeps of named configs x seeds.

``cluster`` (the Ray settings of a run, connecting to a cluster or starting a local instance that
listens on 127.0.0.1 only), ``dispatch`` (numbered chunks of work over a set of actors, each result
taken exactly once, chunks of a lost actor or node sent again), ``executor`` (the loop's and
``codeit execute``'s executor on Ray), ``baseline`` (the mutation baseline's worker pool on Ray),
``sweep`` (a grid of runs, each a normal Sacred run, locally or as Ray tasks), ``launch`` (the process
of one run of a sweep) and ``sweep_cli`` (``codeit sweep``).

Ray is an optional extra (``pip install -e ".[ray]"``) and is imported only here, only when used:
the local backend, the default, never imports it.  Every Ray actor owns a local sandboxed worker
pool (:mod:`codeit.execution.workers`) with the same limits as on one machine, so isolation does not
depend on the backend.
"""
