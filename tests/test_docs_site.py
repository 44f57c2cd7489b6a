"""The documentation site (mkdocs.yml): it builds with `mkdocs build --strict`, so any warning
(a broken link or anchor, a page missing from the nav, a docstring mkdocstrings cannot read)
fails CI, and its API reference really renders the package's docstrings.
"""
import html
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, has_module

pytestmark = pytest.mark.skipif(not (has_module("mkdocs") and has_module("mkdocstrings")
                                     and has_module("material")),
                                reason="the docs tools are not installed (pip install -e '.[test]': "
                                       "mkdocs, mkdocs-material, mkdocstrings[python])")


def page_text(path) -> str:
    """A built page's visible text, tags stripped."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8"))).split())


def docstring_line(obj) -> str:
    """The first line of an object's docstring as the page shows it (no backticks, spaces normalised)."""
    return " ".join(obj.__doc__.strip().splitlines()[0].replace("`", "").split())


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return out


def test_the_site_builds_strict_with_every_page(site):
    for page in ("index.html", "api/index.html", "case_files/index.html", "gallery/index.html",
                 "solvers/index.html", "reference/index.html", "reference/api/index.html"):
        assert (site / page).is_file(), page
    # the gallery's pictures come along
    assert (site / "images" / "gallery" / "scaling.png").is_file()


def test_the_api_reference_renders_the_docstrings(site):
    import gflow
    from gflow.case import Case
    from gflow.models.base import Model
    from gflow.snapshots import Run
    from gflow.solvers.base import Stepper

    api = page_text(site / "reference" / "api" / "index.html")
    for name in ("load_case", "run", "open_run", "compare", "plot", "movie", "check"):
        function = getattr(gflow, name)
        assert f"gflow.{name}" in api
        assert docstring_line(function) in api, name
    # numpydoc sections become tables: the parameters of gflow.run, with their defaults
    assert "Overwrite runs already in" in api and "Parameters:" in api
    # (the Case dataclass has no docstring of its own: its properties do)
    for page, obj in (("case", Case.axes), ("snapshots", Run), ("models", Model), ("solvers", Stepper)):
        assert docstring_line(obj) in page_text(site / "reference" / page / "index.html"), page
