"""Running untrusted DSL programs: compile once, run under limits, in sandboxed worker processes.

``limits`` (what a program may use), ``interrupt`` (the one ``SIGALRM`` tick that stops a runaway
line or input), ``runner`` (compile and run in this process), ``workers`` (the one module that
starts, caps, feeds, watches, kills and replaces sandboxed worker processes, for every client),
``executor`` (many jobs on the workers), ``shared_eval`` (many related programs on the same inputs,
shared lines computed once) and ``cli`` (``codeit execute``).  Nothing here imports torch.
"""
