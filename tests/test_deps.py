"""Every DVC stage depends on exactly the project code it runs: no stale results, no needless reruns.

The stages come from DVC's own reading of dvc.yaml and params.yaml (matrix items resolved). For each stage the
command's module (`python -m pipeline.<x>`) is followed through every project import it can execute — module
level and inside functions, static import statements — and that set of files must equal the stage's code deps.
"""

from __future__ import annotations

import pytest

from pipeline.deps import PROJECT, closure


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
    """Exact for every stage. A comparison method's item (`python -m pipeline.compare <method> …`) also runs
    frad/<method>/method.py, which the registry imports by name; it may depend on the shared files another method
    runs (one `compare` family: its deps are one list, the method's code file a ${item.method} entry)."""
    from frad.methods import METHODS

    shared = set().union(*(closure(f"frad.{m}.method") for m in METHODS)) - {f"frad/{m}/method.py" for m in METHODS}
    problems = []
    for name, cmd, deps in dvc_stages:
        words = cmd.split()
        assert words[:2] == ["python", "-m"], f"stage {name}: command {cmd!r} is not `python -m <module> …`"
        needed = set(closure(words[2]))
        allowed = needed
        if words[2] == "pipeline.compare":
            needed |= closure(f"frad.{words[3]}.method")
            allowed = needed | shared
        code = {d for d in deps if d.endswith(".py")}
        problems += [f"stage {name} runs {f} but does not depend on it" for f in sorted(needed - code)]
        problems += [f"stage {name} depends on {f} but never runs it" for f in sorted(code - allowed)]
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_the_closure_follows_imports_inside_functions_and_skips_type_checking():
    files = closure("pipeline.train")
    assert {"pipeline/train.py", "pipeline/params.py", "frad/train.py", "frad/io.py", "frad/cache.py"} <= files
    assert "frad/backbone.py" not in files  # imported by frad/cache.py only for type checking
    assert not any(f.startswith("pipeline/report/") for f in closure("pipeline.score"))


def test_a_package_stage_runs_its_init_and_main():
    """`python -m pipeline.report` imports the package (__init__.py) and runs its __main__.py: both are deps, with
    the package modules they import; a module importing the package does not run its __main__.py."""
    files = closure("pipeline.report")
    assert {"pipeline/report/__init__.py", "pipeline/report/__main__.py", "pipeline/report/tables.py"} <= files
    assert "pipeline/report/__init__.py" in closure("pipeline.choices_report")
    assert "pipeline/report/__main__.py" not in closure("pipeline.choices_report")


def test_every_stage_module_is_a_stage(dvc_stages):
    """Each pipeline module with a main() is run by some stage (or is the demo, the deps generator, the parallel runner or the timing table)."""
    run = {cmd.split()[2] for _, cmd, _ in dvc_stages}
    stage_like = {
        f"pipeline.{p.stem if p.stem != '__main__' else p.parent.name}"
        for p in [*(PROJECT / "pipeline").glob("*.py"), *(PROJECT / "pipeline").glob("*/__main__.py")]
        if "def main(" in p.read_text() or "main = stage_main" in p.read_text()
    }
    assert "pipeline.report" in stage_like  # a package stage: its __main__.py
    assert stage_like - run <= {"pipeline.demo", "pipeline.deps", "pipeline.run", "pipeline.timings"}


def test_committed_dvc_yaml_holds_the_generated_code_deps():
    """`python -m pipeline.deps` writes every stage's code deps; the committed dvc.yaml equals its output."""
    from pipeline import deps

    text = (deps.PROJECT / "dvc.yaml").read_text()
    assert deps.rewrite(text) == text, "run `python -m pipeline.deps`"
    assert deps.rewrite(deps.rewrite(text)) == deps.rewrite(text)
    compare = set(deps.code_deps("pipeline.compare", per_method=True))
    assert "frad/train.py" not in compare and "frad/model.py" not in compare
    assert {"frad/${item.method}/method.py", "pipeline/compare.py", "frad/harness.py"} <= compare
    assert not {f"frad/{m}.py" for m in ("padim", "patchcore", "rd")} & compare


# One interpreter loads the third-party libraries the stages use (they hold no project file), then forks a child
# per stage module: each child starts with no project module loaded, as `python -m pipeline.<x>` does, without
# paying for torch's import again.
IMPORTS_OF_EACH_MODULE = """
import importlib, json, os, sys, traceback
import numpy, scipy.ndimage, torch, yaml
assert not [m for m in sys.modules if m.split(".")[0] in ("frad", "pipeline")]
for module in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            from pipeline.params import load_params
            load_params()
            files = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
            with os.fdopen(write, "w") as out:
                json.dump(files, out)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as got:
        text = got.read()
    if os.waitpid(pid, 0)[1] != 0:
        sys.exit(f"python -m {module}: importing it or loading params.yaml failed (above)")
    print(json.dumps([module, json.loads(text)]))
"""


def test_what_a_stage_imports_at_run_time_is_in_its_deps(dvc_stages):
    """The static closure is checked against Python itself: importing each stage's module and loading params.yaml
    (what every stage does first) executes no project file outside its code deps — no import by name (importlib)
    escapes them. Each module in a fresh process with no project module loaded."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from pipeline.deps import _empty

    deps_of = {}
    for _, cmd, deps in dvc_stages:
        deps_of.setdefault(cmd.split()[2], set()).update(d for d in deps if d.endswith(".py"))
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS_OF_EACH_MODULE, *sorted(deps_of)], cwd=PROJECT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    reported = dict(json.loads(line) for line in proc.stdout.splitlines() if line.startswith("["))
    assert set(reported) == set(deps_of)
    problems = []
    for module, deps in sorted(deps_of.items()):
        loaded = set()
        for f in reported[module]:
            path = f and Path(f).resolve()
            if path and path.is_relative_to(PROJECT) and path.parts[len(PROJECT.parts)] in ("frad", "pipeline"):
                loaded.add(path.relative_to(PROJECT).as_posix())
        assert f"{module.replace('.', '/')}.py" in loaded or f"{module.replace('.', '/')}/__init__.py" in loaded
        extra = {f for f in loaded - deps if not (f.endswith("__init__.py") and _empty(PROJECT / f))}
        problems += [f"python -m {module} imports {f}, not in its deps" for f in sorted(extra)]
    assert not problems, "\n".join(problems)
