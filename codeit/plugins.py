"""The plugin manager: built-in plugins, the ``codeit`` entry-point group, and config-named modules.

:func:`get_plugin_manager` registers, in this order (pluggy calls later plugins first, so each
group may override the one before it):

1. the built-in plugins -- entry points of the ``codeit`` distribution itself (``codeit_plugins.*``,
   declared in setup.cfg exactly as a third-party plugin declares its own);
2. every other entry point in the ``codeit`` group (installed third-party plugins), by name;
3. the modules named in ``config["plugins"]["modules"]``, then plugin objects passed in.

Each plugin is registered under a name (the entry-point name, or the module name); names in
``config["plugins"]["disable"]`` are blocked and not loaded.  Then :meth:`PluginManager.check_pending`
rejects any ``codeit_*`` function that matches no hook, naming the plugin and the nearest hook.

Run config, ``config["plugins"]`` (every key optional)::

    modules:  ["my_package.my_plugin"]       # extra plugin modules to import and register
    disable:  ["relabel"]                    # plugin names not to register
    model:    "t5"                           # model name for codeit_make_model
    sampler:  ["policy"]                     # sampler names for codeit_sample_programs
    relabel:  ["hindsight"]                  # relabeler names for codeit_relabel
    priority: {"performance": 1.0}           # priority scheme -> weight (a list: equal weights)
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from codeit import hookspecs
from codeit.config import PAPER_CONFIG
from codeit.errors import UserError, did_you_mean
from codeit.hookspecs import PROJECT, hookimpl

__all__ = [
    "DEFAULT_SELECTION",
    "ENTRY_POINT_GROUP",
    "PluginError",
    "PluginManager",
    "UnknownComponentError",
    "get_plugin_manager",
    "hookimpl",
    "plugins_config",
    "priority_weights",
    "selected_names",
]

ENTRY_POINT_GROUP = "codeit"
BUILTIN_DISTRIBUTION = "codeit"
HOOK_PREFIX = "codeit_"

#: Components a run uses when its config names none (the paper's, :data:`codeit.config.PAPER_CONFIG`).
DEFAULT_SELECTION: dict[str, Any] = {kind: PAPER_CONFIG["plugins"][kind] for kind in ("model", "sampler", "relabel", "priority")}


class PluginError(UserError, RuntimeError):
    """A plugin could not be loaded or registered, or implements a hook that does not exist."""


class UnknownComponentError(PluginError, LookupError):
    """The config selects a model, sampler, relabeler or priority scheme that no plugin provides."""


class PluginManager(pluggy.PluginManager):
    """pluggy's manager for the ``codeit`` project, with ``codeit_``-prefix hook discovery.

    Any callable attribute of a plugin named ``codeit_*`` is a hook implementation, marked or not,
    so that a typo becomes a pending hook that :meth:`check_pending` reports.
    """

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        #: plugin name -> where it came from ("builtin", "entry point <dist> <version>", "config", "object")
        self.origins: dict[str, str] = {}

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(HOOK_PREFIX):
            method = getattr(plugin, name, None)
            if inspect.isroutine(method):
                opts = {"wrapper": False, "hookwrapper": False, "optionalhook": False, "tryfirst": False,
                        "trylast": False, "specname": None}
        return opts

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        """Register ``plugin``; a bad hook signature raises :class:`PluginError` naming the plugin."""
        try:
            return super().register(plugin, name)
        except pluggy.PluginValidationError as err:
            detail = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
            raise PluginError(f"cannot register plugin {name or plugin!r}: {detail}") from None
        except ValueError as err:  # name or object already registered
            raise PluginError(f"cannot register plugin {name!r}: {err}") from None

    def check_pending(self) -> None:
        """Raise :class:`PluginError` if a plugin implements a ``codeit_*`` hook that does not exist."""
        known = sorted(n for n in dir(self.hook) if n.startswith(HOOK_PREFIX)
                       and getattr(self.hook, n).has_spec())
        problems = []
        for hook_name in sorted(dir(self.hook)):
            caller = getattr(self.hook, hook_name)
            if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                problems.append(f"plugin {impl.plugin_name!r} implements unknown hook "
                                f"{hook_name!r}{did_you_mean(hook_name, known)}")
        if problems:
            raise PluginError("\n".join(problems) + f"\nknown hooks: {', '.join(known)}")

    def describe(self) -> list[tuple[str, str, list[str], str]]:
        """``(name, origin, hooks implemented, first docstring line)`` per registered plugin, in
        registration order."""
        rows = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:  # blocked
                continue
            hooks = sorted(c.name for c in (self.get_hookcallers(plugin) or []))
            rows.append((name, self.origins.get(name, "object"), hooks, summary(inspect.getdoc(plugin) or "")))
        return rows


def summary(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line, without reST markup."""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    sentence = re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0]
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", sentence).replace("``", "")


def plugins_config(config: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``config["plugins"]`` or an empty mapping."""
    if not config:
        return {}
    section = config.get("plugins") or {}
    if not isinstance(section, Mapping):
        raise PluginError(f"config 'plugins' must be a mapping, got {type(section).__name__}")
    return section


def selected_names(config: Mapping[str, Any] | None, kind: str) -> list[str]:
    """The component names the run selects for ``kind`` (``"sampler"``, ``"relabel"``, ``"model"``,
    ``"priority"``), from ``config["plugins"][kind]`` or :data:`DEFAULT_SELECTION`."""
    value = plugins_config(config).get(kind, DEFAULT_SELECTION.get(kind, []))
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [str(k) for k in value]
    return [str(v) for v in value]


def priority_weights(config: Mapping[str, Any] | None) -> dict[str, float]:
    """Priority scheme -> weight from ``config["plugins"]["priority"]``: a mapping of weights, a list
    of names (equal weights) or one name.  Weights must be >= 0 with a positive sum."""
    value = plugins_config(config).get("priority", DEFAULT_SELECTION["priority"])
    if isinstance(value, str):
        weights = {value: 1.0}
    elif isinstance(value, Mapping):
        weights = {str(k): float(v) for k, v in value.items()}
    else:
        weights = {str(k): 1.0 for k in value}
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise PluginError(f"config plugins.priority needs non-negative weights with a positive sum, got {value!r}")
    return weights


def module_name_of(spec: str) -> str:
    """The module name a ``plugins.modules`` entry registers under (a file's name without ``.py``)."""
    return Path(spec).stem if spec.endswith(".py") else spec


def import_plugin_module(spec: str) -> ModuleType:
    """Import a ``plugins.modules`` entry: a file (``my_plugin.py``, ``plugins/mine.py``) or a module
    name, looked up on the import path and then in the working folder (so ``my_priority`` finds
    ``./my_priority.py`` as ``python -c 'import my_priority'`` would)."""
    try:
        if spec.endswith(".py"):
            path = Path(spec).expanduser().resolve()
            if not path.is_file():
                raise PluginError(f"plugin module file {spec!r} named in config plugins.modules does not exist "
                                  f"(looked in {Path.cwd()})")
            name = path.stem
            if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
                return sys.modules[name]
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
            return module
        try:
            return importlib.import_module(spec)
        except ModuleNotFoundError as err:
            top = spec.partition(".")[0]
            cwd = str(Path.cwd())
            if err.name != top or cwd in sys.path:
                raise
            sys.path.append(cwd)  # the working folder, last: never shadows an installed module
            return importlib.import_module(spec)
    except PluginError:
        raise
    except Exception as err:
        raise PluginError(f"cannot import plugin module {spec!r} named in config plugins.modules: "
                          f"{type(err).__name__}: {err}") from err


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))

    def order(ep: importlib.metadata.EntryPoint) -> tuple[int, str, str]:
        dist = ep.dist.name if ep.dist is not None else ""
        return (0 if dist == BUILTIN_DISTRIBUTION else 1, dist.lower(), ep.name)

    return sorted(eps, key=order)


def get_plugin_manager(config: Mapping[str, Any] | None = None, *, plugins: Iterable[Any] = (),
                       disable: Sequence[str] = (), entry_points: bool = True,
                       check: bool = True) -> PluginManager:
    """A :class:`PluginManager` with every plugin registered (module docstring for the order).

    ``plugins`` are extra plugin objects (or ``(name, object)`` pairs) registered last; ``disable``
    adds to ``config["plugins"]["disable"]``; ``entry_points=False`` skips installed plugins (built-ins
    included).  Unless ``check=False``, :meth:`PluginManager.check_pending` runs at the end.
    """
    section = plugins_config(config)
    pm = PluginManager()
    blocked = [*section.get("disable", ()), *disable]
    for name in blocked:
        pm.set_blocked(str(name))

    if entry_points:
        seen: dict[str, str] = {}
        for ep in _entry_points():
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "unknown distribution"
            if ep.name in seen:
                raise PluginError(f"two plugins named {ep.name!r} in entry-point group {ENTRY_POINT_GROUP!r}: "
                                  f"{seen[ep.name]} and {ep.value} ({dist})")
            seen[ep.name] = f"{ep.value} ({dist})"
            if pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as err:
                raise PluginError(f"cannot load plugin {ep.name!r} = {ep.value} from {dist}: "
                                  f"{type(err).__name__}: {err}") from err
            pm.register(plugin, ep.name)
            is_builtin = ep.dist is not None and ep.dist.name == BUILTIN_DISTRIBUTION
            pm.origins[ep.name] = "builtin" if is_builtin else f"entry point, {dist}"

    for spec in section.get("modules", ()):
        module_name = module_name_of(str(spec))
        if pm.is_blocked(module_name):
            continue
        module = import_plugin_module(str(spec))
        pm.register(module, module_name)
        pm.origins[module_name] = "config plugins.modules"

    for item in plugins:
        name, plugin = item if isinstance(item, tuple) else (None, item)
        if name is not None and pm.is_blocked(name):
            continue
        registered = pm.register(plugin, name)
        if registered is not None:
            pm.origins[registered] = "object"

    if check:
        pm.check_pending()
    return pm


# --------------------------------------------------------------------------------------------------
# `codeit plugins`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--module", "-m", action="append", default=[], metavar="MODULE",
                        help="also register this plugin module (as config plugins.modules would)")
    parser.add_argument("--disable", "-d", action="append", default=[], metavar="NAME",
                        help="do not register the plugin NAME (as config plugins.disable would)")


def main(args: argparse.Namespace) -> int:
    """Print every registered plugin, where it comes from, and the hooks it implements."""
    # a PluginError is a UserError: the codeit command prints it as one line (exit 2)
    pm = get_plugin_manager({"plugins": {"modules": args.module, "disable": args.disable}})
    rows = pm.describe()
    for name, origin, hooks, doc in rows:
        print(f"{name}  [{origin}]" + (f"  {doc}" if doc else ""))
        for hook in hooks:
            print(f"    {hook}")
    blocked = [name for name, plugin in pm.list_name_plugin() if plugin is None]
    if blocked:
        print(f"disabled: {', '.join(sorted(blocked))}")
    print(f"{len(rows)} plugins")
    return 0
