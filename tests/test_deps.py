"""Every DVC stage depends on exactly the project code it runs: no stale results, no needless reruns.

The stages come from DVC's own reading of dvc.yaml and params.yaml (matrix items resolved). For each stage the
command's module (`python -m pipeline.<x>`) is followed through every project import it can execute — module
level and inside functions, static import statements — and that set of files must equal the stage's code deps.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
PACKAGES = ("frad", "pipeline")


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    path = PROJECT.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> set[str]:
    """Project modules a file imports anywhere (module level or in functions), except under TYPE_CHECKING."""
    package = ".".join(path.relative_to(PROJECT).with_suffix("").parts[:-1])
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from frad import metrics`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {name for name in found if _module_file(name) is not None}


@functools.cache
def closure(module: str) -> frozenset[str]:
    """Project files (relative paths) that running ``module`` can import, itself included."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        rel = path.relative_to(PROJECT).as_posix() if path else None
        if rel is None or rel in seen:
            continue
        seen.add(rel)
        todo.extend(_imports(path))
        # importing a.b.c runs the package __init__ files on the way
        todo.extend(".".join(name.split(".")[:i]) for i in range(1, len(name.split("."))))
    return frozenset(
        p for p in seen if not (p.endswith("__init__.py") and not _imports(PROJECT / p) and _empty(PROJECT / p))
    )


def _empty(path: Path) -> bool:
    """An __init__.py with nothing but a docstring and constants cannot change a stage's output."""
    tree = ast.parse(path.read_text())
    return all(isinstance(n, (ast.Expr, ast.Assign)) for n in tree.body)


@pytest.fixture(scope="module")
def dvc_stages(tmp_path_factory):
    """Every stage family with at least one item: the project's params, with the open-choices study listing a
    category (off by default, it has none)."""
    from dvc.repo import Repo

    from pipeline.workspace import make_workspace

    ws = make_workspace(tmp_path_factory.mktemp("deps") / "ws", {"choices.categories": ["bottle"]})
    with Repo(str(ws)) as repo:
        return [(s.addressing, s.cmd, sorted(d.def_path for d in s.deps)) for s in repo.index.stages]


def test_every_stage_depends_on_exactly_the_code_it_runs(dvc_stages):
    problems = []
    for name, cmd, deps in dvc_stages:
        words = cmd.split()
        assert words[:2] == ["python", "-m"], f"stage {name}: command {cmd!r} is not `python -m <module> …`"
        needed = closure(words[2])
        code = {d for d in deps if d.endswith(".py")}
        problems += [f"stage {name} runs {f} but does not depend on it" for f in sorted(needed - code)]
        problems += [f"stage {name} depends on {f} but never runs it" for f in sorted(code - needed)]
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_the_closure_follows_imports_inside_functions_and_skips_type_checking():
    files = closure("pipeline.train")
    assert {"pipeline/train.py", "pipeline/params.py", "frad/train.py", "frad/io.py", "frad/cache.py"} <= files
    assert "frad/backbone.py" not in files  # imported by frad/cache.py only for type checking
    assert "pipeline/report.py" not in closure("pipeline.score")


def test_every_stage_module_is_a_stage(dvc_stages):
    """Each pipeline module with a main() is run by some stage (or is the demo or the parallel runner)."""
    run = {cmd.split()[2] for _, cmd, _ in dvc_stages}
    stage_like = {
        f"pipeline.{p.stem}"
        for p in (PROJECT / "pipeline").glob("*.py")
        if "def main(" in p.read_text() or "main = stage_main" in p.read_text()
    }
    assert stage_like - run <= {"pipeline.demo", "pipeline.run"}
