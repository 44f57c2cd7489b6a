"""The package version (one place; setup.cfg and the snapshot files read it)."""

__version__ = "0.2.0"
