"""Each stage's code deps in dvc.yaml, generated from what its command runs: ``python -m pipeline.deps`` rewrites
the ``.py`` entries of every stage's ``deps:`` list (data deps, comments, anchors and everything else untouched);
``--check`` exits 1 when dvc.yaml differs from what it would write (tests/test_deps.py runs it).

The code a stage runs is the import closure of its command's module (``python -m pipeline.<x>``; for a package,
its ``__init__.py`` and ``__main__.py``): every project import it can execute, at module level or inside
functions, except under ``TYPE_CHECKING``. Every stage validates params.yaml, so every stage lists the registry
(frad/methods.py) and each method's settings (``frad/<method>/__init__.py``, torch-free). A command with a
``${item.method}`` argument (the ``compare`` family) runs one method's code, ``frad/<method>/method.py``, which the
registry imports by name: the closure of each registered method's code is added, and the code file itself becomes a
``${item.method}`` entry, so each method's items depend on their own code only.
"""

from __future__ import annotations

import argparse
import ast
import functools
import re
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PACKAGES = ("frad", "pipeline")
METHOD = "${item.method}"
METHOD_FILE = f"frad/{METHOD}/method.py"
_STAGE = re.compile(r"^  (\w+):\s*$")
_CMD = re.compile(r"^\s+cmd: python -m (\S+)(.*)$")
_DEPS = re.compile(r"^(\s+)deps:(\s*&\w+)?\s*$")


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


def _empty(path: Path) -> bool:
    """An __init__.py with nothing but a docstring and constants cannot change a stage's output."""
    return all(isinstance(n, (ast.Expr, ast.Assign)) for n in ast.parse(path.read_text()).body)


def _entry(module: str) -> list[str]:
    """``python -m <package>`` imports the package, then runs its ``__main__`` module."""
    path = _module_file(module)
    return (
        [f"{module}.__main__"]
        if path and path.name == "__init__.py" and (path.parent / "__main__.py").is_file()
        else []
    )


@functools.cache
def closure(module: str) -> frozenset[str]:
    """Project files (paths relative to the project) that running ``module`` can import, itself included (for a
    package: its ``__init__.py`` and ``__main__.py``)."""
    seen: set[str] = set()
    todo = [module, *_entry(module)]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        rel = path.relative_to(PROJECT).as_posix() if path else None
        if rel is None or rel in seen:
            continue
        seen.add(rel)
        todo.extend(_imports(path))
        todo.extend(".".join(name.split(".")[:i]) for i in range(1, len(name.split("."))))  # package __init__s
    return frozenset(
        p for p in seen if not (p.endswith("__init__.py") and not _imports(PROJECT / p) and _empty(PROJECT / p))
    )


def code_deps(module: str, per_method: bool = False) -> list[str]:
    """The ``.py`` deps of a stage running ``python -m <module>``, pipeline/ first, each part sorted; with
    ``per_method`` (a ``${item.method}`` argument) also each registered comparison method's closure, its own
    code as ``frad/${item.method}/method.py``."""
    files = set(closure(module))
    if per_method:
        from frad.methods import METHODS

        for m in METHODS:
            files |= {METHOD_FILE if f == f"frad/{m}/method.py" else f for f in closure(f"frad.{m}.method")}
    return sorted(files, key=lambda f: (not f.startswith("pipeline/"), METHOD not in f, f))


def rewrite(text: str) -> str:
    """dvc.yaml with every stage's ``deps:`` list holding exactly its code deps (see :func:`code_deps`)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    module, per_method = None, False
    i = 0
    while i < len(lines):
        line = lines[i]
        if _STAGE.match(line):
            module = None
        if m := _CMD.match(line):
            module, per_method = m.group(1), METHOD in m.group(2)
        m = _DEPS.match(line)
        out.append(line)
        i += 1
        if not m or module is None:
            continue
        item = m.group(1) + "  - "
        block = []
        while i < len(lines) and lines[i].startswith(item):
            block.append(lines[i])
            i += 1
        data = [b for b in block if not b[len(item) :].split("#")[0].strip().endswith(".py")]
        out += data + [f"{item}{f}\n" for f in code_deps(module, per_method)]
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if dvc.yaml differs from what would be written")
    args = parser.parse_args(argv)
    path = PROJECT / "dvc.yaml"
    text = path.read_text()
    new = rewrite(text)
    if args.check:
        if new != text:
            print("dvc.yaml: code deps are not what the stages run; write them with `python -m pipeline.deps`")
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
