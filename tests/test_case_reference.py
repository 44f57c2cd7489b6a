"""docs/case_files.md against the case reader, both ways, and `gflow template`.

The reference (`gflow.case_keys`) is a list written beside the readers, so these tests are what
keeps them one: the committed page is the list rendered; every key the readers read on every
bundled case and template is in the list; every key in the list is read when a template sets it
to its example; every key name the readers' source asks a Table for is in the list.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from gflow.case import apply_override, case_from_text
from gflow.case_keys import KEYS, TEMPLATES, TABLES, _section, documented, render, template
from gflow.errors import InputError
from gflow.schema import recording
from gflow.solver_options import SOLVERS

ROOT = Path(__file__).resolve().parents[1]
CASES = sorted((ROOT / "cases").glob("*.toml"))
TEMPLATE_OF = {"two_layer": "two_layer", "resnet": "resnet", "potential": "potential"}


def _normal(key: str) -> str:
    """A recorded key as the reference spells it: [[solvers]] items are [solver] tables, and the
    per-axis tables of [initial.factors] (named for the axis) are `initial.factors[]`."""
    key = re.sub(r"^initial\.factors\.[^.]+\.", "initial.factors[].", key)
    return re.sub(r"^solvers\[\]\.", "solver.", key)


def _read_keys(text: str, source: str, base_dir: Path, overrides=(), kinds=None) -> set[str]:
    with recording() as keys:
        try:
            case_from_text(text, source, list(overrides), kinds, base_dir=base_dir, memory=False)
        except InputError as exc:
            # another key's refusal is fine (the one under test was read first); an unknown key is not
            if "unknown key" in str(exc):
                raise
    return {_normal(k) for k in keys if not k.startswith("sweep.")}


def test_the_committed_page_is_the_reference_rendered():
    page = (ROOT / "docs" / "case_files.md").read_text(encoding="utf-8")
    assert page == render(), "docs/case_files.md is stale: python -m gflow.case_keys > docs/case_files.md"


def test_every_example_is_toml_and_every_key_has_a_table():
    for key in KEYS:
        tomllib.loads(f"v = {key.example}")
        for name, value in key.needs:
            tomllib.loads(f"v = {value}")
        assert _section(key.key) in TABLES, key.key


def test_every_solver_option_says_what_it_means():
    from gflow.solver_options import SOLVER_OPTIONS

    blank = [f"{kind}.{name}" for kind, options in SOLVER_OPTIONS.items() for name, o in options.items()
             if len(o.doc.split()) < 3]
    assert not blank, f"options without a meaning in docs/case_files.md: {blank}"


@pytest.mark.parametrize("path", CASES + [f"template:{k}" for k in TEMPLATES], ids=lambda p: getattr(p, "stem", p))
def test_every_key_the_reader_reads_is_documented(path, tmp_path):
    if isinstance(path, Path):
        text, base = path.read_text(encoding="utf-8"), path.parent
    else:
        text, base = template(path.split(":")[1]), tmp_path
    names = set(documented()) | set(TABLES)
    read = _read_keys(text, str(path), base)
    # each solver kind's options, on this case
    for kind in SOLVERS:
        read |= _read_keys(text, str(path), base, kinds=[kind])
    assert read - names == set(), f"keys read but not in docs/case_files.md: {sorted(read - names)}"


def _remove(doc: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        doc = doc.get(part, {})
    doc.pop(last, None)


@pytest.mark.parametrize("key", [k for k in KEYS if "[]" not in k.key], ids=lambda k: k.key)
def test_every_documented_key_is_read(key, tmp_path):
    name = key.template or TEMPLATE_OF[key.models[0] if key.models else "two_layer"]
    doc = tomllib.loads(template(name))
    for other in key.replaces:
        _remove(doc, other)
    # set as `--set KEY=VALUE` sets them, the example parsed as TOML
    for other, value in (*key.needs, (key.key, key.example)):
        apply_override(doc, f"{other}={value}", name)
    (tmp_path / "data.csv").write_text("x,y\n-1.0,0.2\n0.5,-0.1\n")
    read = _read_keys(tomli_w.dumps(doc), f"{name}+{key.key}", tmp_path)
    assert key.key in read


def test_list_item_keys_are_read_by_some_case():
    # keys inside lists of tables: read by the bundled cases or templates (checked above for the rest)
    read = set()
    for path in CASES:
        read |= _read_keys(path.read_text(encoding="utf-8"), str(path), path.parent)
    doc = tomllib.loads(template("two_layer"))
    doc["initial"] = {"distribution": "mixture", "components": [{"weight": 1.0, "mean": [0.0, 0.0],
                                                                 "std": [0.5, 0.5]}]}
    doc["target"]["neurons"][0]["b"] = 0.0
    read |= _read_keys(tomli_w.dumps(doc), "mixture", ROOT)
    doc = tomllib.loads(template("two_layer"))      # axes a, w
    doc["initial"] = {"distribution": "product", "factors": {"a": {"distribution": "gaussian", "mean": 0.0, "std": 1.0},
                                                             "w": {"distribution": "uniform", "low": -2.0, "high": 2.0}}}
    read |= _read_keys(tomli_w.dumps(doc), "product", ROOT)
    items = {k.key for k in KEYS if "[]" in k.key}
    assert items - read == set()


def test_every_key_name_in_the_readers_source_is_documented():
    """A key the readers ask a Table for by name is in the reference, as some key's last part."""
    calls = re.compile(r"\.(?:string|number|numbers|integer|boolean|table|raw|has)\(\"([A-Za-z_0-9]+)\"")
    names = set()
    for path in [ROOT / "gflow" / "case.py", ROOT / "gflow" / "initial_case.py",
                 *(ROOT / "gflow" / "models").glob("*_case.py")]:
        names |= set(calls.findall(path.read_text(encoding="utf-8")))
    leaves = {re.split(r"[.\]]", k)[-1] for k in documented()} | set(TABLES) | {"solvers"}
    assert names - leaves == set()


@pytest.mark.parametrize("kind", list(TEMPLATES))
def test_templates_print_and_run(kind, tmp_path):
    """`gflow template KIND` prints the template, and that case runs (here, two snapshots on a
    coarse grid)."""
    out = subprocess.run([sys.executable, "-m", "gflow", "template", kind], capture_output=True, text=True,
                         check=True).stdout
    assert out == template(kind)
    path = tmp_path / "case.toml"
    path.write_text(out)
    doc = tomllib.loads(out)
    cells = 8 if len(doc["initial"]["mean"]) == 3 else 16
    run = subprocess.run([sys.executable, "-m", "gflow", "run", str(path), "-o", str(tmp_path / "run"),
                          "--solver", "fv", "--set", f"grid.cells={cells}", "--set", "time.end=0.05",
                          "--set", "time.snapshots=2"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "mass 1" in run.stdout


def test_unknown_template_is_one_line():
    run = subprocess.run([sys.executable, "-m", "gflow", "template", "nope"], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "two_layer" in run.stderr
