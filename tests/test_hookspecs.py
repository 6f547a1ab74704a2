"""Every hookspec is documented: in its docstring and in docs/hooks.md."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pluggy

from codeit import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "hooks.md"


def spec_functions() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(Path(hookspecs.__file__).read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if any(d.startswith("hookspec") for d in decorators):
                found[node.name] = node
    return found


def doc_sections() -> dict[str, str]:
    text = DOCS.read_text()
    parts = re.split(r"^### `(codeit_\w+)`", text, flags=re.MULTILINE)
    return {name: body for name, body in zip(parts[1::2], parts[2::2])}


def test_hook_names_have_the_prefix_and_a_contract():
    specs = spec_functions()
    assert len(specs) >= 11
    for name, node in specs.items():
        assert name.startswith("codeit_"), name
        doc = ast.get_docstring(node)
        assert doc and len(doc) > 80, f"{name}: no contract in the docstring"
        assert ("firstresult" in doc) or ("Collected" in doc), f"{name}: say whether firstresult or collected"


def test_every_hookspec_is_in_docs_hooks_md_with_its_arguments():
    sections = doc_sections()
    specs = spec_functions()
    missing = sorted(set(specs) - set(sections))
    assert not missing, f"hooks missing from {DOCS.relative_to(ROOT)}: {missing}"
    unknown = sorted(set(sections) - set(specs))
    assert not unknown, f"{DOCS.relative_to(ROOT)} documents hooks that do not exist: {unknown}"
    for name, node in specs.items():
        for arg in (a.arg for a in node.args.args):
            described = re.search(rf"`{arg}\b", sections[name])  # `arg` or `arg[i]`, `arg.x`...
            assert described, f"docs/hooks.md, {name}: argument `{arg}` not described"


def test_parsed_specs_match_what_pluggy_registers():
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registered = {n for n in dir(pm.hook) if n.startswith("codeit_")}
    assert registered == set(spec_functions())
    for name in registered:
        opts = getattr(pm.hook, name).spec.opts
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert opts["firstresult"] == ("firstresult" in doc), name


def test_plugin_writing_guide_exists_and_names_the_example():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert "examples/codeit-priority-example" in guide and "codeit_priority" in guide and "codeit_mutate" in guide
