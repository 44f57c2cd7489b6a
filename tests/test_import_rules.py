"""The import rules of the house, read from the AST of every module (imports inside functions too).

The packages form layers; a module may import only from its own layer and the layers named
for it below. In words:

1. `gflow.errors` and `gflow.version` import nothing of gflow; the utilities (`expr`, `schema`,
   `fft`) only each other and errors; `gflow.grids` is plain geometry and imports nothing of gflow.
2. `gflow.models` (model kinds, units, data, grid operators, references) builds on the
   utilities and grids only: a model knows nothing of case files as a whole, files or solvers.
3. The case-file contract (`gflow.case`, `gflow.solver_options`, its reference `gflow.case_keys`) reads the models' registry;
   `gflow.problem` turns a case into a model, a grid and an initial density.
4. The file formats (`gflow.snapshots` writes run files, `gflow.run_file` reads them, both
   through `gflow.h5io` and its rollback journal `gflow.journal`, labelling datasets by
   `gflow.run_labels`; `gflow.snapshot_check`, `gflow.sweep_table`) may parse a stored case,
   and nothing above.
5. `gflow.solvers` (steppers, the run loop, trackers, integrators) and `gflow.postprocess`
   (reads snapshot files only) sit side by side: neither imports the other.
6. `gflow.app` (command line, execution, sweeps, the Python API) is the only code that imports
   the solvers or postprocess, and nothing imports the app but the package's facade
   (`gflow/__init__.py`, lazily) and `gflow/__main__.py`.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> the package it installs as (setup.cfg's package_dir)
FOLDERS = {"gflow": "gflow", "grids": "gflow.grids", "solvers": "gflow.solvers", "postprocess": "gflow.postprocess"}

UTILITIES = {"gflow.errors", "gflow.version", "gflow.expr", "gflow.schema", "gflow.fft"}
CONTRACT = UTILITIES | {"gflow.grids", "gflow.models", "gflow.case", "gflow.solver_options"}
FORMATS = UTILITIES | {"gflow.grids", "gflow.case", "gflow.solver_options", "gflow.snapshots", "gflow.sweep_table",
                       "gflow.snapshot_check", "gflow.run_file", "gflow.h5io", "gflow.journal", "gflow.run_labels"}

#: layer (a module or package) -> what its modules may import from gflow, besides their own layer
ALLOWED = {
    "gflow.errors": set(),
    "gflow.version": set(),
    "gflow.expr": {"gflow.errors"},
    "gflow.schema": {"gflow.errors", "gflow.expr"},
    "gflow.fft": {"gflow.errors"},
    "gflow.grids": set(),
    "gflow.models": UTILITIES | {"gflow.grids"},
    "gflow.solver_options": UTILITIES,
    # the case-file reference (docs/case_files.md): the units' and solvers' registries, no reader
    "gflow.case_keys": UTILITIES | {"gflow.models", "gflow.solver_options"},
    "gflow.case": UTILITIES | {"gflow.grids", "gflow.models", "gflow.solver_options", "gflow.memory",
                               "gflow.case_times", "gflow.initial_case"},
    "gflow.initial_case": UTILITIES | {"gflow.models"},   # the [initial] laws beyond the Gaussians
    "gflow.case_times": UTILITIES,               # the [time] table: snapshot times
    "gflow.memory": UTILITIES | {"gflow.models"},
    "gflow.problem": CONTRACT,
    "gflow.h5io": {"gflow.errors", "gflow.journal"},
    "gflow.journal": set(),
    "gflow.run_labels": set(),                   # the datasets' long_name and units, a table
    "gflow.snapshots": FORMATS,
    "gflow.run_file": FORMATS,
    "gflow.snapshot_check": FORMATS,
    "gflow.sweep_table": FORMATS,
    # an initial law from a run file: read when a run starts, passed into the problem as arrays
    "gflow.initial_snapshot": FORMATS,
    "gflow.solvers": CONTRACT | {"gflow.problem", "gflow.snapshots"},
    "gflow.postprocess": CONTRACT | FORMATS | {"gflow.problem"},
    "gflow.app": {"gflow"},                      # everything
    "gflow.__main__": {"gflow.app"},
    "gflow": {"gflow.version", "gflow.app", "gflow.errors"},   # the facade, lazily
}


def modules():
    """(module name, path) of every source file of the four folders."""
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join([package, *parts]), path


def layer(module: str) -> str:
    """The longest key of ALLOWED that is the module or a package holding it."""
    best = None
    for key in ALLOWED:
        if module == key or module.startswith(key + "."):
            best = key if best is None or len(key) > len(best) else best
    assert best is not None, f"{module} belongs to no layer: add it to ALLOWED"
    return best


def imports(path: Path):
    """Every module an import statement names (`from a.b import c` names a.b and a.b.c)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def known(name: str, _names: set[str] = set()) -> bool:
    """Whether `name` is one of our modules or packages (not an attribute imported from one)."""
    if not _names:
        _names.update(m for m, _ in modules())
    return name in _names


def test_every_import_follows_the_layers():
    broken = []
    for module, path in modules():
        own = layer(module)
        allowed = ALLOWED[own]
        for line, name in imports(path):
            top = name.split(".")[0]
            if top in ("solvers", "grids", "postprocess"):
                broken.append(f"{path.relative_to(ROOT)}:{line}: imports {name} (use gflow.{name})")
                continue
            if top != "gflow" or not known(name):
                continue
            target = layer(name)
            if target == own or target in allowed or "gflow" in allowed:
                continue
            broken.append(f"{path.relative_to(ROOT)}:{line}: {own} may not import {name} ({target})")
    assert not broken, "\n".join(broken)


def test_only_the_app_imports_solvers_and_postprocess():
    """Rule 6 spelled out, so that a loosened ALLOWED table cannot hide a break of it."""
    broken = []
    for module, path in modules():
        for line, name in imports(path):
            for guarded in ("gflow.solvers", "gflow.postprocess", "gflow.app"):
                inside = module == guarded or module.startswith(guarded + ".")
                exempt = module.startswith("gflow.app") or (guarded == "gflow.app" and module in ("gflow", "gflow.__main__"))
                if (name == guarded or name.startswith(guarded + ".")) and not inside and not exempt:
                    broken.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {name}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("module", ["gflow.solvers.fv", "gflow.solvers.particle", "gflow.models.two_layer"])
def test_importing_a_solver_or_model_does_not_load_the_case_parser_or_the_app(module):
    import subprocess
    import sys

    code = (f"import sys, {module}; "
            "loaded = [m for m in ('gflow.case', 'gflow.app', 'gflow.postprocess', 'matplotlib') if m in sys.modules]; "
            "print(loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_a_user_directory_with_solvers_and_grids_does_not_shadow_gflow(tmp_path):
    """Installed as one namespace, gflow ignores a solvers.py or grids/ in the working directory."""
    import subprocess
    import sys

    (tmp_path / "solvers.py").write_text("raise ImportError('the user solvers.py was imported')\n")
    (tmp_path / "grids").mkdir()
    (tmp_path / "grids" / "__init__.py").write_text("raise ImportError('the user grids/ was imported')\n")
    (tmp_path / "postprocess.py").write_text("raise ImportError('the user postprocess.py was imported')\n")
    code = ("from gflow.app.execute import run_case; import gflow.solvers.fv, gflow.grids, gflow.postprocess.plot; "
            "import gflow; print(gflow.__version__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    from gflow.version import __version__
    assert out.stdout.strip() == __version__
