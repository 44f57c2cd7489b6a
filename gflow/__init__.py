"""gflow: training of wide networks as a Wasserstein gradient flow, solved as a PDE.

The Python API (docs/api.md)::

    import gflow
    case = gflow.load_case("cases/quickstart.toml", overrides=["time.end=2"])
    runs = gflow.run(case, solvers=["fv", "particle"], output="runs/api")
    run = gflow.open_run("runs/api/fv.h5")           # arrays, the case, run.to_xarray()
    table = gflow.compare(runs[0], runs[1])           # W1, W2, L1, risk differences per time
    gflow.plot(run, "fv.png")

`import gflow` is light: each name loads its module on first use (PEP 562), so the command
line and the solvers never pay for what they do not use.
"""
from gflow.version import __version__

#: public name -> "module:attribute", imported on first access
_API = {
    "load_case": "gflow.app.api:load_case",
    "run": "gflow.app.api:run",
    "open_run": "gflow.app.api:open_run",
    "compare": "gflow.app.api:compare",
    "plot": "gflow.app.api:plot",
    "movie": "gflow.app.api:movie",
    "check": "gflow.app.api:check",
    "InputError": "gflow.errors:InputError",
    "RunError": "gflow.errors:RunError",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'gflow' has no attribute {name!r}")
    from importlib import import_module

    module, attribute = _API[name].split(":")
    value = getattr(import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
