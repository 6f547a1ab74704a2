"""The ``codeit`` command line: one sub-command per module, imported only when it is used.

Each entry maps a sub-command to ``"module:function"``; the module's ``add_arguments(parser)`` adds
its options and the function receives the parsed namespace and returns an exit code.  Importing a
sub-command lazily keeps ``codeit execute`` free of torch and transformers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

#: sub-command -> (help text, "module:function")
COMMANDS: dict[str, tuple[str, str]] = {
    "execute": ("run DSL programs from a JSONL file on input grids", "codeit.execution.cli:main"),
    "plugins": ("list the registered plugins and the hooks they implement", "codeit.plugins:main"),
    "mutation-baseline": ("mutate seed programs and score the mutants on the evaluation tasks",
                          "codeit.baseline.cli:main"),
    "compare": ("the ablation table and curves of recorded runs (file records or MongoDB)",
                "codeit.compare.cli:main"),
    "sweep": ("run a grid of named configs x seeds (here or on a Ray cluster) and compare its runs",
              "codeit.distributed.sweep_cli:main"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (all are listed in ``--help``)."""
    parser = argparse.ArgumentParser(prog="codeit", description=__doc__.splitlines()[0].replace("``", ""),
                                     epilog="--debug (anywhere): full tracebacks for user errors too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (help_text, target) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module_name, _, func_name = target.partition(":")
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.set_defaults(_entry=getattr(module, func_name))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a sub-command; a :class:`~codeit.errors.UserError` is one line on stderr and exit 2."""
    from codeit.errors import DEBUG_ENV, UserError, debug_enabled

    argv = sys.argv[1:] if argv is None else list(argv)
    if "--debug" in argv:
        argv.remove("--debug")
        os.environ[DEBUG_ENV] = "1"
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    try:
        return int(args._entry(args) or 0)
    except UserError as err:
        if debug_enabled():
            raise
        print(f"codeit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
