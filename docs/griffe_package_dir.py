"""A griffe extension for the docs site: the folders setup.cfg's `package_dir` maps into `gflow`.

setup.cfg installs the repository's folders `grids/`, `solvers/` and `postprocess/` as
`gflow.grids`, `gflow.solvers` and `gflow.postprocess`. Griffe (mkdocstrings' reader) finds a
package's submodules by walking its folder, so it sees `gflow/` alone and `::: gflow.solvers`
would not be found. Once griffe has loaded `gflow`, this extension reads the same mapping from
setup.cfg and loads each mapped folder, statically like the rest, as the submodule it installs as.
mkdocs.yml names it in the python handler's `extensions`.
"""
from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import griffe

ROOT = Path(__file__).resolve().parents[1]


def package_dir(setup_cfg: Path = ROOT / "setup.cfg") -> dict[str, Path]:
    """setup.cfg's `[options] package_dir`: dotted package name -> its folder."""
    parser = configparser.ConfigParser()
    parser.read(setup_cfg, encoding="utf-8")
    mapping = {}
    for line in parser.get("options", "package_dir", fallback="").splitlines():
        if "=" in line:
            name, folder = (part.strip() for part in line.split("=", 1))
            mapping[name] = ROOT / folder
    return mapping


class PackageDir(griffe.Extension):
    """Attach each folder mapped below a loaded top-level package as its submodule."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        for name, folder in sorted(package_dir().items()):
            parent, _, child = name.rpartition(".")
            if parent != pkg.path or child in pkg.members or not (folder / "__init__.py").is_file():
                continue
            # griffe has no public call for "load this folder as a subpackage of that module";
            # _load_module is what its own submodule walk calls (it recurses into the folder)
            module = loader._load_module(child, folder / "__init__.py", submodules=True, parent=pkg)
            pkg.set_member(child, module)
