"""Running untrusted DSL programs: compile once, run under limits, in sandboxed worker processes.

``limits`` (what a program may use), ``interrupt`` (stopping a runaway line), ``runner`` (compile
and run in this process), ``workers`` (the sandboxed worker processes), ``executor`` (many jobs on
the workers), ``shared_eval`` (many related programs on the same inputs, shared lines computed
once) and ``cli`` (``codeit execute``).  Nothing here imports torch.
"""
