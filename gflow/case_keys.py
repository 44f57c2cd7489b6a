"""The case-file reference: every key of every table, its type, default, meaning and an example.

`docs/case_files.md` is `render()` of this list and the solver registry (`gflow.solver_options`),
regenerated with `python -m gflow.case_keys > docs/case_files.md`. The readers in `gflow/case.py`
and `gflow/models/*_case.py` stay the one place a key is checked; tests/test_case_reference.py
holds this list to them both ways: every key the readers read (recorded by `gflow.schema.recording`
over every bundled case and template) is listed here, and every key listed here is read when a
template sets it to its example, so the reference cannot drift from the parser.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources

from gflow.expr import FUNCTIONS
from gflow.models.units import FAMILIES, UNITS
from gflow.solver_options import SOLVERS

NETWORKS = ("two_layer", "resnet")


@dataclass(frozen=True)
class Key:
    """One case-file key. `key` is dotted; `[]` marks the tables of a list (`initial.components[].mean`)."""

    key: str
    type: str
    default: str
    meaning: str
    example: str
    #: the model kinds that read it (empty: every kind)
    models: tuple[str, ...] = ()
    #: keys removed from the template when a test sets this one (they exclude each other)
    replaces: tuple[str, ...] = ()
    #: the template a test sets it in (default: the first model kind's)
    template: str = ""
    #: (key, TOML value) set with it, without which it is not read (a mixture's components)
    needs: tuple[tuple[str, str], ...] = ()


REQUIRED = "required"

KEYS: tuple[Key, ...] = (
    # --------------------------------------------------------------- top level
    Key("name", "string", "the file's stem", "the run's name (default output folder runs/NAME)", '"quickstart"'),
    Key("description", "string", '""', "what the case shows; stored in every run file", '"a tanh network"'),
    # --------------------------------------------------------------- [model]
    Key("model.kind", "string", REQUIRED, "the model: `two_layer` (a network f(x) = E a sigma(w.x + b)), "
        "`resnet` (a continuous-depth ResNet, docs/resnet.md) or `potential` (aggregation-diffusion)",
        '"two_layer"'),
    Key("model.activation", "string", '"tanh"', f"the unit sigma: {', '.join(f'`{u}`' for u in UNITS)}",
        '"relu"', NETWORKS),
    Key("model.unit", "string", "none (a sigma(w.x + b) with `activation`)", "two_layer: the unit phi(x; u) of "
        "f(x) = E phi(x; u), a family (" + ", ".join(f"`{f}`: {FAMILIES[f].meaning}" for f in FAMILIES) +
        ") or an expression in x (x1..xd) and `axes`; excludes activation and bias (docs/units.md)",
        '"gaussian"', ("two_layer",), replaces=("model.activation", "model.bias", "target.neurons"),
        needs=(("target.expression", '"sin(pi*x)"'),)),
    *(Key(f"model.{name}", "number", f"{default:g}", meaning, "0.5", ("two_layer",),
          replaces=("model.activation", "model.bias", "target.neurons"),
          needs=(("model.unit", f'"{family}"'), ("target.expression", '"sin(pi*x)"')))
      for family, spec in FAMILIES.items() for name, (default, meaning) in spec.parameters.items()),
    Key("model.bias", "bool", "false", "true adds the axis b: u = (a, w, b)", "true", NETWORKS),
    Key("model.input_dim", "integer", "1", "d, the dimension of x; axes w (d = 1) or w1..wd, variables x or "
        "x1..xd (resnet: the state dimension; isotropic data: equal to data.dim or left out)", "2", NETWORKS),
    Key("model.train", "list of strings", "every axis", "the axes that move; `\"w\"` stands for w1..wd "
        "(resnet: `\"a\"` for a1..ad); the others stay frozen (`[\"a\"]`: the random-feature model)",
        '["a"]', NETWORKS),
    Key("model.symmetry", "string", '"none"', "with rotation-invariant data (`data.dim`): `rotations` solves "
        "the PDE of the invariants, `none` moves particles in the full R^(1+d) (docs/symmetry.md)",
        '"rotations"', ("two_layer",), template="isotropic"),
    Key("model.layers", "integer", "4", "L, the number of layer densities of a ResNet", "8", ("resnet",)),
    Key("model.refresh", "integer", "1", "steps between refreshes of the forward state z and the costate p "
        "(1: exact gradient flow; > 1: the method of successive approximations)", "4", ("resnet",)),
    Key("model.msa_rho", "number", "0", "the extended MSA's penalty on the state's drift while z and p are "
        "frozen (needs refresh > 1)", "0.1", ("resnet",), needs=(("model.refresh", "4"),)),
    Key("model.axes", "list of strings", REQUIRED, "the names of the axes (positions) of a potential model; "
        "they are the variables of `potential`. two_layer with `unit`: the unit's axes, its variables besides "
        "the inputs (required for an expression; a family's default otherwise)", '["x1", "x2"]',
        ("potential", "two_layer")),
    Key("model.potential", "string", '"0"', "the external potential P(u), an expression in the axis names",
        '"0.5*(x1**2 + x2**2)"', ("potential",)),
    Key("model.interaction", "string", "none", "the interaction kernel W(r), an expression in r = |u - u'|",
        '"0.5*r**2 - log(r)"', ("potential",)),
    # --------------------------------------------------------------- [target]
    Key("target.neurons", "list of tables", "", "a teacher network: f*(x) = sum a sigma(w.x + b) "
        "(give neurons or expression)", '[{ a = 1.5, w = 2.0 }]', NETWORKS),
    Key("target.neurons[].a", "number", REQUIRED, "a teacher neuron's amplitude", "1.5", NETWORKS),
    Key("target.neurons[].w", "number or list", REQUIRED, "its weights (d numbers)", "[2.0, -1.0]", NETWORKS),
    Key("target.neurons[].b", "number", "0", "its bias (needs model.bias = true)", "0.5", NETWORKS),
    Key("target.expression", "string", "", "f*(x) as an expression in x (x1..xd); on isotropic data in x1 and "
        "r = |x|", '"sin(pi*x)"', NETWORKS, replaces=("target.neurons",)),
    # --------------------------------------------------------------- [data]
    Key("data.distribution", "string", '"uniform"', "the data measure: `uniform` (Gauss-Legendre nodes on "
        "[low, high]^d), `gaussian` (Gauss-Hermite, N(mean, std^2)), `samples` (random draws), `sphere` "
        "(`samples` points uniform on the sphere of `radius` in R^d, d >= 2); with dim: isotropic Gaussian "
        "data in R^dim", '"gaussian"', NETWORKS),
    Key("data.measure", "string", '"probability"', "`probability` (weights sum to 1: R = 1/2 E_x (f - f*)^2) "
        "or `lebesgue` (uniform data, Gauss-Legendre or uniform samples: weights sum to (high - low)^d, so "
        "R = 1/2 int (f - f*)^2 dx, the L^2(dx) error); refused for other data", '"lebesgue"', NETWORKS),
    Key("data.low", "number", "-1", "the uniform data's lower end", "-2.0", NETWORKS),
    Key("data.high", "number", "1", "the uniform data's upper end", "2.0", NETWORKS),
    Key("data.mean", "number", "0", "the Gaussian data's mean (every coordinate)", "0.5", NETWORKS),
    Key("data.std", "number", "1", "the Gaussian data's standard deviation", "0.5", NETWORKS),
    Key("data.nodes", "integer (list with dim)", "32 (16 with dim)", "quadrature nodes per input axis (nodes^d "
        "in all); with dim: per reduced axis, one number or [x1, |x_perp|, cosine]", "16", NETWORKS),
    Key("data.samples", "integer", "1000 (4096 with dim)", "draws of `samples` and `sphere` data; with dim: "
        "the full model's data draws per step", "2000", NETWORKS),
    Key("data.radius", "number", "1", "the radius of `sphere` data", "2.0", NETWORKS, replaces=("data.nodes",),
        template="two_layer_2d", needs=(("data.distribution", '"sphere"'),)),
    Key("data.seed", "integer", "0", "the seed of the data draws", "3", NETWORKS),
    Key("data.sampler", "string", '"uniform"', "what `samples` draws from: `uniform` (low, high) or "
        "`gaussian` (mean, std)", '"gaussian"', NETWORKS),
    Key("data.file", "string", "", "a CSV file of data (path relative to the case file): a header of column "
        "names x (or x1..xd) and optionally y, then one point per line; with y, [target] is refused",
        '"data.csv"', NETWORKS, replaces=("data.distribution", "data.nodes", "data.low", "data.high", "target")),
    Key("data.x", "list", "", "data points inline, weight 1/n each: numbers (d = 1) or lists of d numbers "
        "(at most 2^20)", "[-1.0, 0.0, 1.0]", NETWORKS,
        replaces=("data.distribution", "data.nodes", "data.low", "data.high")),
    Key("data.y", "list of numbers", "", "the targets of the inline points data.x (as many); with y, [target] "
        "is refused", "[0.5, 0.0, -0.5]", NETWORKS,
        replaces=("data.distribution", "data.nodes", "data.low", "data.high", "target"),
        needs=(("data.x", "[-1.0, 0.0, 1.0]"),)),
    Key("data.dim", "integer", "", "rotation-invariant Gaussian data in R^dim (2 to 10^5), solved on the "
        "invariants' grid (docs/symmetry.md)", "40", ("two_layer",), template="isotropic"),
    Key("data.classes", "list of tables", "", "with dim: a labelled mixture of centred isotropic Gaussians "
        "(its y replaces [target])", '[{ weight = 0.5, std = 1.0, y = 1.0 }, { weight = 0.5, std = 1.5, y = -1.0 }]',
        ("two_layer",), replaces=("target", "data.std"), template="isotropic"),
    Key("data.classes[].weight", "number", REQUIRED, "a class's probability (normalised)", "0.5", ("two_layer",)),
    Key("data.classes[].std", "number", REQUIRED, "its standard deviation", "1.5", ("two_layer",)),
    Key("data.classes[].y", "number", REQUIRED, "its label", "-1.0", ("two_layer",)),
    # --------------------------------------------------------------- [regularization]
    Key("regularization.weight_decay", "number", "0", "lambda: V gains lambda |u|^2 / 2", "0.01"),
    Key("regularization.temperature", "number", "0", "T: the noise T lap rho (Langevin dynamics); the energy "
        "gains T int rho log rho", "0.1"),
    Key("regularization.mass_penalty", "number", "0", "lambda_M: E gains lambda_M mu(Omega) and V the constant "
        "lambda_M, the total-variation penalty of sparse optimisation; needs dynamics.fisher_rao (docs/wfr.md)",
        "0.3", needs=(("dynamics.fisher_rao", "0.2"),)),
    # --------------------------------------------------------------- [initial]
    Key("initial.mass", "number", "1", "M, the initial total mass of Wasserstein-Fisher-Rao dynamics: the law "
        "(its weights, point weights included, normalised to 1) times M; needs dynamics.fisher_rao (docs/wfr.md)",
        "0.25", needs=(("dynamics.fisher_rao", "0.2"),)),
    Key("initial.distribution", "string", '"gaussian"', "rho(u, 0): `gaussian` (mean, std), `uniform` (on the "
        "grid's box), `mixture` (components), `points` (point masses: inline or `file`), `sphere` (uniform on "
        "a sphere), `product` (one law per axis) or `snapshot` (another run's); `points` and `file` imply points, "
        "`snapshot` its own (docs/initial_conditions.md)", '"uniform"',
        replaces=("initial.mean", "initial.std")),
    Key("initial.mean", "list of numbers", REQUIRED, "the Gaussian's mean, one per axis (a number: every axis)",
        "[0.0, 0.0]"),
    Key("initial.std", "list of numbers", REQUIRED, "its standard deviations, one per axis", "[0.5, 0.8]"),
    Key("initial.layer_means", "list", "", "resnet: each layer's mean, L lists of D numbers, or D entries, each "
        "a number or an expression in the depth tau = l / L", '[0.0, "tau"]', ("resnet",)),
    Key("initial.components", "list of tables", REQUIRED, "mixture: Gaussian components",
        "[{ weight = 1.0, mean = [0.0, 0.0], std = [0.5, 0.5] }]", replaces=("initial.mean", "initial.std"),
        needs=(("initial.distribution", '"mixture"'),)),
    Key("initial.components[].weight", "number", REQUIRED, "a component's weight (normalised)", "0.5"),
    Key("initial.components[].mean", "list of numbers", REQUIRED, "its mean, one per axis", "[0.0, 1.0]"),
    Key("initial.components[].std", "list of numbers", REQUIRED, "its standard deviations", "[0.3, 0.3]"),
    Key("initial.points", "list of lists", REQUIRED, "points: point masses, one list of D numbers each "
        "(particles start there; grids deposit them)", "[[1.0, 0.5], [-1.0, 0.5]]",
        replaces=("initial.mean", "initial.std"), needs=(("initial.distribution", '"points"'),)),
    Key("initial.weights", "list of numbers", "equal", "points: their masses (normalised)", "[0.25, 0.75]",
        replaces=("initial.mean", "initial.std"),
        needs=(("initial.distribution", '"points"'), ("initial.points", "[[1.0, 0.5], [-1.0, 0.5]]"))),
    Key("initial.file", "string", "", "points from a CSV file (path relative to the case file): a header naming "
        "every axis once (any order) and optionally `weight`, then one point per line (at most 10^6); particle "
        "and blob solvers start from them as given, grid solvers deposit them (cloud-in-cell)",
        '"particles.csv"', replaces=("initial.distribution", "initial.mean", "initial.std")),
    Key("initial.radius", "number", REQUIRED, "sphere: particles uniform on |u - center| = radius in all the "
        "case's axes", "2.0", replaces=("initial.mean", "initial.std"),
        needs=(("initial.distribution", '"sphere"'),)),
    Key("initial.center", "list of numbers", "0", "sphere: its centre, one per axis (a number: every axis)",
        "[0.0, 0.5]", replaces=("initial.mean", "initial.std"),
        needs=(("initial.distribution", '"sphere"'), ("initial.radius", "2.0"))),
    Key("initial.width", "number", "required by grids", "sphere: grids (and quadrature particles) start from a "
        "shell, density ~ exp(-(|u - center| - radius)^2 / (2 width^2)), cell-averaged", "0.1",
        replaces=("initial.mean", "initial.std"),
        needs=(("initial.distribution", '"sphere"'), ("initial.radius", "2.0"))),
    Key("initial.factors", "table", REQUIRED, "product: one law per axis, each axis once: `{ distribution = "
        "\"gaussian\", mean, std }` or `{ distribution = \"uniform\", low, high }`",
        '{ a = { distribution = "gaussian", mean = 0.0, std = 1.0 }, '
        'w = { distribution = "uniform", low = -2.0, high = 2.0 } }',
        replaces=("initial.mean", "initial.std"), needs=(("initial.distribution", '"product"'),)),
    Key("initial.factors[].distribution", "string", REQUIRED, "an axis' law (the key is the axis): `gaussian` or "
        "`uniform`", '"uniform"'),
    Key("initial.factors[].mean", "number", REQUIRED, "gaussian: its mean", "0.0"),
    Key("initial.factors[].std", "number", REQUIRED, "gaussian: its standard deviation", "1.0"),
    Key("initial.factors[].low", "number", REQUIRED, "uniform: its lower end", "-2.0"),
    Key("initial.factors[].high", "number", REQUIRED, "uniform: its upper end", "2.0"),
    Key("initial.snapshot", "string", "", "start from another run's snapshot (a run file, path relative to the "
        "case file; same axes): its particles (as given; grids deposit them) or its density (grids remap it; "
        "particles draw m from it, or one per cell with init = quadrature)", '"runs/x/fv.h5"',
        replaces=("initial.distribution", "initial.mean", "initial.std")),
    Key("initial.snapshot_index", "integer", "-1", "which snapshot of it (Python indexing: -1 the last)", "0",
        replaces=("initial.distribution", "initial.mean", "initial.std"),
        needs=(("initial.snapshot", '"runs/x/fv.h5"'),)),
    # --------------------------------------------------------------- [grid]
    Key("grid.bounds", "list of pairs", REQUIRED, "[low, high] per axis: the box of the grid, and the bins of "
        "particle runs", "[[-6.0, 6.0], [-5.0, 5.0]]"),
    Key("grid.cells", "list of integers", REQUIRED, "cells per axis (a number: every axis)", "[192, 128]"),
    # --------------------------------------------------------------- [time]
    Key("time.end", "number", REQUIRED, "the final time (not with `times`: its last entry is the end)", "10.0"),
    Key("time.snapshots", "integer", "11", "snapshots written, t = 0 and t = end included, evenly spaced "
        "(or as `spacing` says; not with `times`)", "21"),
    Key("time.spacing", "string", '"linear"', "`linear` (evenly spaced) or `log`: t = 0, then snapshots - 1 "
        "times geometrically spaced from `first` to end", '"log"'),
    Key("time.first", "number", "end / 1000", "spacing = `log`: the first positive snapshot time", "0.01",
        needs=(("time.spacing", '"log"'),)),
    Key("time.times", "list of numbers", "", "the snapshot times themselves, strictly increasing, finite, "
        ">= 0 (t = 0 is put first when absent); end and snapshots are then refused", "[0.0, 0.1, 1.0, 10.0]",
        replaces=("time.end", "time.snapshots")),
    Key("time.dt", "number", "the solver's", "a fixed step (particles: the learning rate); without it "
        "each solver picks stable steps", "0.01"),
    # --------------------------------------------------------------- [dynamics]
    Key("dynamics.birth_death", "number", "0", "kappa of birth-death: d_t rho = div(rho grad V) - kappa (V - <V>) "
        "rho, mass kept 1 (Rotskoff et al. 2019; docs/birth_death.md); 0: plain transport. Needs temperature = 0, "
        "not a layered model; particles: `birth_death_scheme`", "0.5"),
    Key("dynamics.birth_death_until", "number", "never", "the time from which birth-death stops (the quench: "
        "plain transport after it); with birth_death = 0 it stops nothing (a sweep over kappa may include 0)", "5.0", needs=(("dynamics.birth_death", "0.5"),)),
    Key("dynamics.fisher_rao", "number", "0", "alpha of Wasserstein-Fisher-Rao dynamics: d_t mu = -alpha V mu "
        "+ beta div(mu grad V), mass not conserved (Chizat 2022; docs/wfr.md); 0: none. Solvers fv, blob and "
        "particle (Chizat's conic step). Needs temperature = 0, no birth_death, not a layered model", "0.2"),
    Key("dynamics.transport", "number", "1", "beta: the factor of the transport velocity -grad V beside "
        "fisher_rao (0: pure Fisher-Rao)", "0.005", needs=(("dynamics.fisher_rao", "0.2"),)),
    # --------------------------------------------------------------- [solver], [[solvers]]
    Key("solver.kind", "string", '"fv"', f"the solver: {', '.join(f'`{k}`' for k in SOLVERS)}; its options "
        "are listed below. `[[solvers]]` (a list of such tables) runs several on the same case", '"particle"'),
    Key("solvers", "list of tables", "", "several solvers on one case, each a [solver] table",
        '[{ kind = "fv" }, { kind = "particle", particles = 2000 }]', replaces=("solver",)),
    # --------------------------------------------------------------- [output], [sweep]
    Key("output.dir", "string", '"runs/NAME"', "the folder of the run files (DIR/<solver>.h5)", '"runs/mine"'),
    Key("sweep", "table", "", "dotted key -> list of values, for `gflow sweep` (docs/sweeps.md); "
        "the keys may be any case key", '{ "solver.particles" = [100, 1000] }'),
)

#: section heading and text for each table, in the order of the reference
TABLES = {
    "": ("Top level", ""),
    "model": ("[model]", "What evolves. The axes of u follow from the kind (see *Axes and variables*)."),
    "target": ("[target]", ("Networks only: the function to learn. Give `neurons` or `expression`; "
                            "refused when the data carry y (a data file's y column, inline `data.y`), "
                            "required otherwise.")),
    "data": ("[data]", "Networks only: the measure of x in E_x."),
    "regularization": ("[regularization]", "Optional."),
    "initial": ("[initial]", "The initial density, on the model's axes."),
    "grid": ("[grid]", "The box and its cells; particle runs bin into it (particles may leave it)."),
    "time": ("[time]", ""),
    "dynamics": ("[dynamics]", ("Optional: birth-death of mass beside transport (docs/birth_death.md), or "
                                "Wasserstein-Fisher-Rao dynamics (docs/wfr.md).")),
    "solver": ("[solver] and [[solvers]]", "Every option of each kind, with its default, follows the table."),
    "output": ("[output]", "Optional."),
    "sweep": ("[sweep]", "Optional; ignored by `gflow run`."),
}


def documented() -> dict[str, Key]:
    """Dotted key -> Key, with each solver option as `solver.NAME` (any kind that has it)."""
    keys = {k.key: k for k in KEYS}
    for kind in SOLVERS.values():
        for name, opt in kind.options.items():
            keys.setdefault(f"solver.{name}", Key(f"solver.{name}", opt.kind, repr(opt.default), opt.doc,
                                                  repr(opt.default)))
    return keys


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section(key: str) -> str:
    """The table a key belongs to ("" for the top level)."""
    if "." not in key:
        return {"solvers": "solver", "sweep": "sweep"}.get(key, "")
    return key.split(".")[0]


def _key_table(keys) -> list[str]:
    lines = ["| key | type | default | meaning | example | models |", "|---|---|---|---|---|---|"]
    for k in keys:
        lines.append(f"| `{k.key}` | {k.type} | {_cell(k.default) or '-'} | {_cell(k.meaning)} | "
                     f"`{_cell(k.example)}` | {', '.join(k.models) or 'all'} |")
    return lines


def _solver_tables() -> list[str]:
    lines = []
    for kind in SOLVERS.values():
        lines += ["", f"### kind = \"{kind.name}\"", "", kind.doc[:1].upper() + kind.doc[1:] + ".", "",
                  "| key | type | default | meaning |", "|---|---|---|---|"]
        for name, opt in kind.options.items():
            allowed = f" (one of: {', '.join(opt.choices)})" if opt.choices else ""
            lines.append(f"| `{name}` | {opt.kind} | `{opt.default!r}` | {_cell(opt.doc + allowed) or '-'} |")
    return lines


PREAMBLE = f"""# Case files

A case is one TOML file. Its tables describe the model, the data, the initial density, the grid,
the time and the solvers; every key is listed below with its type, default, meaning and an
example. `gflow template [KIND]` prints a commented case to start from (`gflow template --list`).
A key not listed here is refused with one line naming the file and the key (exit 2); any key may
be overridden on the command line: `gflow run CASE --set grid.cells=[64,64]`.

This page is generated from `gflow/case_keys.py` (`python -m gflow.case_keys > docs/case_files.md`),
and `tests/test_case_reference.py` holds it to the case reader both ways.

## Axes and variables

| model | axes of u | expression variables |
|---|---|---|
| `two_layer`, input_dim = 1 | `a`, `w` (`b` with bias = true) | target: `x` |
| `two_layer`, input_dim = d > 1 | `a`, `w1` .. `wd` (`b`) | target: `x1` .. `xd` |
| `two_layer` with data.dim | `a`, `w_par`, `w_perp` (`b`) when the target uses x1, else `a`, `w_norm` (`b`) | target: `x1`, `r` |
| `two_layer` with `unit` | `model.axes`; `unit = "gaussian"`: `a`, `y` (d = 1) or `a`, `y1` .. `yd` | unit: the inputs and the axes; target: `x` (`x1` .. `xd`) |
| `resnet`, input_dim = d | `a1` .. `ad`, `w1` .. `wd` (`b`); d = 1: `a`, `w` | target: `x` (`x1` .. `xd`) |
| `potential` | `model.axes` | potential: the axis names; interaction: `r` |

`[initial]` and `[grid]` lists have one entry per axis, in this order. Expressions allow numbers,
the variables, `pi`, `+ - * / **`, parentheses and the functions {', '.join(f'`{f}`' for f in FUNCTIONS)};
nothing else is evaluated.

## Data files

`data.file = "data.csv"` names a CSV file (relative to the case file): a header line of column
names, `x` (d = 1) or `x1` .. `xd`, optionally `y`, then one data point per line, each point of
weight 1/n. With a `y` column the targets are the file's and `[target]` must be left out (given
both, the case is refused: the two would disagree). The same points may be written inline,
`x = [-1.0, 0.5]` (lists of d numbers for d > 1) with `y = [0.2, -0.1]`.

```
x,y
-1.0,0.2
0.5,-0.1
```

## Data measures

E_x is an integral against the data measure nu = sum_m p_m delta_(x_m). By default nu is a
probability (the weights sum to 1) and R = 1/2 E_x (f - f*)^2. With `measure = "lebesgue"`,
uniform data on [low, high]^d (Gauss-Legendre nodes, or uniform `samples`) weigh the volume
(high - low)^d in all, so R = 1/2 int (f - f*)^2 dx is the L^2(dx) error, as papers on
Gaussian-unit networks report it; V, its gradient and time scale by the same volume. SGD
minibatches draw from p / volume and weigh each draw volume / batch, so they stay unbiased.
`distribution = "sphere"` draws `samples` points uniform on the sphere of `radius` in R^d.

## Snapshot times

`end` and `snapshots` give evenly spaced times; `spacing = "log"` gives t = 0 and then
snapshots - 1 times geometrically spaced from `first` (default end / 1000) to end, for plots on
a log time axis; `times = [0.0, 0.1, 1.0, 10.0]` lists them (strictly increasing, t = 0 put
first when missing), and then `end` and `snapshots` are refused, since the list's last entry is
the end and its length the number of snapshots. The run file's `time` dataset holds exactly
these times.
"""


def render() -> str:
    """docs/case_files.md."""
    lines = [PREAMBLE.rstrip("\n")]
    for table, (title, text) in TABLES.items():
        keys = [k for k in KEYS if _section(k.key) == table]
        lines += ["", f"## {title}", ""] + ([text, ""] if text else []) + _key_table(keys)
        if table == "solver":
            lines += _solver_tables()
    return "\n".join(lines) + "\n"


#: `gflow template KIND`: the commented case files in gflow/case_templates/, first the default
TEMPLATES = {
    "two_layer": "a tanh network on 1-D data, u = (a, w)",
    "two_layer_2d": "a ReLU network on 2-D inputs, u = (a, w1, w2), fv against particles",
    "langevin": "noisy gradient descent: weight decay and temperature, the Gibbs fixed point",
    "isotropic": "data in R^40 reduced by symmetry to (a, w_par, w_perp)",
    "rbf": "Gaussian-RBF units a N(x; y, s2) on the Lebesgue measure, u = (a, y) (docs/units.md)",
    "resnet": "a continuous-depth ResNet, one density per layer",
    "potential": "aggregation-diffusion of positions (no network)",
}


def template(kind: str = "two_layer") -> str:
    """The commented case file of `kind` (one of TEMPLATES)."""
    if kind not in TEMPLATES:
        raise KeyError(kind)
    return resources.files("gflow").joinpath("case_templates", f"{kind}.toml").read_text(encoding="utf-8")


if __name__ == "__main__":
    sys.stdout.write(render())
