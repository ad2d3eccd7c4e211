"""The import contract in pyproject.toml holds (also run by `make lint`): the arrows between packages point down."""

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT


def test_import_contract_is_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports)], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def _imports_within(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (at any depth of its code, lazily or not)."""
    import ast

    directory = REPO_ROOT / package.replace(".", "/")
    graph: dict[str, set[str]] = {}
    for path in directory.glob("*.py"):
        name = f"{package}.{path.stem}"
        graph[name] = {
            node.module
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(f"{package}.")
        }
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle_among_the_aggregates_modules():
    """The batch math does not know the Redis key encoding, and the store factory stands apart from both stores."""
    assert _cycle(_imports_within("tone.aggregates")) is None
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check finds one


def _kernel_imports() -> dict[str, set[str]]:
    """Every module of the kernel (tone/, recursively) -> the kernel modules it imports, lazily or not.

    ``from tone.scoring import artifacts`` is an import of the module ``tone.scoring.artifacts``.
    """
    import ast

    modules = {}
    for path in (REPO_ROOT / "tone").rglob("*.py"):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tone"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in modules}
        graph[name] = {d for d in deps if d in modules and d not in (name, "tone")}
    return graph


def test_no_import_circle_in_the_kernel():
    """The registry, the loader and the smoke test, and the artifact format and the scorers, no longer import in a
    circle (the format module doubled as a factory: tone.scoring.factory is that now)."""
    graph = _kernel_imports()
    assert "tone.scoring.factory" in graph["tone.scoring.loader"]  # the graph sees `from x import module`
    assert _cycle(graph) is None
