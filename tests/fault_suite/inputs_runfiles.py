"""Class b of the fault suite: damaged and hostile run files fed to info, check, compare, plot and
run --resume. Each is cut from a small real run that gflow wrote (`Suite.base`)."""
from __future__ import annotations

import os
import re

import h5py
import numpy as np

from .context import CASES, PARTICLE, SMALL, Trial, copy
from .harness import check_file, digest, gflow, judge, watch_outside

HUGE = 2_000_000_000
#: seconds a command on a small (damaged) run file may take before it counts as hung
READ_TIMEOUT = 30.0


def _truncate(p, r, out):
    data = p.read_bytes()
    p.write_bytes(data[: r.randint(0, len(data) - 1)])
    return "truncated"


def _flip(p, r, out):
    data = bytearray(p.read_bytes())
    head = r.random() < 0.3          # the superblock and first object headers
    for _ in range(r.randint(1, 20)):
        i = r.randrange(0, min(len(data), 2048) if head else len(data))
        data[i] ^= 1 << r.randrange(8)
    p.write_bytes(bytes(data))
    return "flipped bytes" + (" (header)" if head else "")


def _zero_block(p, r, out):
    data = bytearray(p.read_bytes())
    i = r.randrange(0, len(data))
    data[i:i + 4096] = bytes(len(data[i:i + 4096]))
    p.write_bytes(bytes(data))
    return "4 KiB zeroed"


def _replace(f, name, **kw):
    del f[name]
    f.create_dataset(name, **kw)


def _huge_time(p, r, out):
    with h5py.File(p, "a") as f:
        names = ["time"] if r.random() < 0.5 else ["time", "risk", "energy", "mass"]
        for name in names:
            _replace(f, name, shape=(HUGE,), maxshape=(None,), chunks=(4096,), dtype="f8")
    return f"huge declared {'+'.join(names)}"


def _huge_density(p, r, out):
    with h5py.File(p, "a") as f:
        n = f["time"].shape[0]
        side = r.choice([30_000, 1_000_000])
        _replace(f, "density", shape=(n, side, side), chunks=(1, 64, 64), dtype="f8")
    return f"huge declared density ({side}^2 per snapshot)"


def _huge_axis(p, r, out):
    with h5py.File(p, "a") as f:
        _replace(f, "a", shape=(HUGE,), chunks=(4096,), dtype="f8")
    return "huge declared axis coordinate"


def _wrong_dtype(p, r, out):
    name = r.choice(["time", "risk", "density", "a", "mass"])
    kind = r.choice(["str", "int8", "complex", "compound", "bool", "scalar"])
    with h5py.File(p, "a") as f:
        shape = f[name].shape
        if kind == "str":
            _replace(f, name, data=np.full(shape, "x", dtype=object), dtype=h5py.string_dtype())
        elif kind == "compound":
            _replace(f, name, shape=shape, dtype=np.dtype([("x", "f8"), ("y", "i4")]))
        elif kind == "scalar":
            _replace(f, name, data=1.0)
        else:
            _replace(f, name, shape=shape, dtype={"int8": "i1", "complex": "c16", "bool": "?"}[kind])
    return f"{name} of dtype {kind}"


def _wrong_attr(p, r, out):
    key = r.choice(["axes", "solver", "case", "format", "format_version"])
    value = r.choice([np.arange(3), 7, np.array([b"\xff\xfe"]), np.array(["a", "b", "c", "d"], dtype=h5py.string_dtype()), ""])
    with h5py.File(p, "a") as f:
        f.attrs[key] = value
    return f"attribute {key} = {type(value).__name__}"


def _external_link(p, r, out):
    target = out.path / "canary.h5"
    name = r.choice(["density", "time", "a"])
    with h5py.File(p, "r") as src, h5py.File(target, "w") as t:
        t[name] = src[name][()]
    with h5py.File(p, "a") as f:
        del f[name]
        f[name] = h5py.ExternalLink(str(target), "/" + name)
    return f"{name} an external link to a file outside"


def _soft_cycle(p, r, out):
    name = r.choice(["density", "time"])
    with h5py.File(p, "a") as f:
        del f[name]
        f[name] = h5py.SoftLink("/loop")
        f["loop"] = h5py.SoftLink("/" + name)
    return f"{name} a cycle of soft links"


CONTROL = "\x1b]0;owned\x07\x1b[2J\x1b[31m\r\x08"   # (HDF5 strings hold no NUL)


def _control_attrs(p, r, out):
    with h5py.File(p, "a") as f:
        f.attrs["solver"] = "fv" + CONTROL
        f.attrs["gflow_version"] = CONTROL + "\n\nTraceback (fake)"
        f.attrs["case"] = 'name = "' + CONTROL + '"\n' + str(f.attrs["case"]).split("\n", 2)[-1]
    return "control characters in attributes"


def _stored_data_file(p, r, out):
    which = r.choice(["/dev/zero", "fifo", "canary"])
    if which == "fifo":
        os.mkfifo(out.path / "data.csv")
        target = out.path / "data.csv"
    elif which == "canary":
        target = out.canary("data.csv", "x,y\n0.1,0.2\n0.3,0.4\n")
    else:
        target = which
    with h5py.File(p, "a") as f:
        case = str(f.attrs["case"])
        case = re.sub(r"\[data\]\n(?:[^\[\n][^\n]*\n)*", f'[data]\nfile = "{target}"\n\n', case)
        f.attrs["case"] = case
    return f"stored case naming {which} as its data file"


def _deep_case(p, r, out):
    n = r.choice([1000, 100_000])
    with h5py.File(p, "a") as f:
        f.attrs.modify("case", str(f.attrs["case"]) + "\ndeep = " + "[" * n + "]" * n + "\n")
    return f"stored case nested {n} deep"


def _bad_times(p, r, out):
    how = r.choice(["nan", "decreasing", "inf", "negative mass", "more rows"])
    with h5py.File(p, "a") as f:
        if how == "nan":
            f["time"][-1] = np.nan
        elif how == "inf":
            f["risk"][0] = np.inf
        elif how == "decreasing":
            f["time"][...] = f["time"][()][::-1]
        elif how == "negative mass":
            f["mass"][...] = -1.0
        else:
            f["time"].resize((f["time"].shape[0] + 5,))
    return f"time/scalars: {how}"


def _hostile_restart(p, r, out):
    """Only for the particle base: its restart group's attributes hold the generators' states,
    the next step size and the snapshot they belong to."""
    with h5py.File(p, "a") as f:
        attrs = f["restart"].attrs
        names = sorted(attrs.keys())
        name = r.choice(names) if names else "snapshot"
        how = r.choice(["drop", "string", "number", "nan", "huge", "negative", "bad json", "deep json",
                        "wrong generator", "junk dataset"])
        if how == "drop" and name in attrs:
            del attrs[name]
        elif how == "string":
            attrs[name] = "x" * 100
        elif how == "number":
            attrs[name] = 3.5
        elif how == "nan":
            attrs[name] = np.nan
        elif how == "huge":
            attrs[name] = np.int64(2**62) if r.random() < 0.5 else 1e300
        elif how == "negative":
            attrs[name] = -1
        elif how == "bad json":
            attrs[name] = '{"bit_generator": "PCG64", "state": {"state": "x"'
        elif how == "deep json":
            attrs[name] = "[" * 50_000 + "]" * 50_000
        elif how == "wrong generator":
            attrs[name] = '{"bit_generator": "os.system", "state": {"state": 1, "inc": 1}}'
        else:
            f["restart"]["junk"] = np.zeros(3)
    return f"restart state: {name} {how}"


def _special_path(p, r, out):
    how = r.choice(["directory", "fifo", "dev_zero", "dangling"])
    p.unlink()
    if how == "directory":
        p.mkdir()
    elif how == "fifo":
        os.mkfifo(p)
    elif how == "dev_zero":
        p.symlink_to("/dev/zero")
    else:
        p.symlink_to(p.parent / "absent.h5")
    return f"run file path a {how}"


DAMAGE = {"truncate": _truncate, "flip": _flip, "zero_block": _zero_block, "huge_time": _huge_time,
          "huge_density": _huge_density, "huge_axis": _huge_axis, "wrong_dtype": _wrong_dtype,
          "wrong_attr": _wrong_attr, "external_link": _external_link, "soft_cycle": _soft_cycle,
          "control_attrs": _control_attrs, "stored_data_file": _stored_data_file, "deep_case": _deep_case,
          "bad_times": _bad_times, "restart": _hostile_restart, "special_path": _special_path}
COMMANDS = ["info", "check", "compare_a", "compare_b", "plot", "resume"]


def hostile_run_files(suite, rng, n, cls):
    # distinct damages first, each with the next command of a shuffled cycle; then the other pairs
    damages, commands = list(DAMAGE), list(COMMANDS)
    rng.shuffle(damages)
    rng.shuffle(commands)
    order = [(d, commands[(i + k) % len(commands)]) for k in range(len(commands)) for i, d in enumerate(damages)]
    for i in range(n):
        damage, command = order[i % len(order)]
        yield Trial(cls, f"{damage}/{command}/{i}", _hostile, suite, cls, damage, command, rng.randrange(2**32))


def _hostile(v, suite, cls, damage, command, seed):
    import random

    r = random.Random(seed)
    work, outside = suite.folder(cls)
    particle = damage == "restart"
    base = suite.base("particle" if particle else "fv")
    kind = "particle" if particle else "fv"
    bad = copy(base, work / "out" / f"{kind}.h5")
    what = DAMAGE[damage](bad, r, outside)
    v.label += f" ({what})"
    before = digest(bad) if bad.is_file() else None
    if command == "resume":   # what --resume must not lose (checked in a child: HDF5 may spin on it)
        before_problem, before_n = check_file(bad, timeout=READ_TIMEOUT) if bad.is_file() else ("absent", 0)
    good = copy(base, work / "good.h5")
    argv = {"info": ["info", bad], "check": ["check", bad], "compare_a": ["compare", bad, good],
            "compare_b": ["compare", good, bad], "plot": ["plot", bad, "-o", work / "figure.png"],
            "resume": ["run", CASES / "quickstart.toml", "-o", work / "out", "--resume",
                       *(PARTICLE if particle else SMALL)]}[command]
    outside.arm()
    result = gflow(argv, work, timeout=READ_TIMEOUT)
    # plot rebuilds the model from the stored case, so it reads the case's data file by design
    watch_outside(v, outside, result.command(), may_read=command == "plot")
    outcome = judge(v, result)
    if CONTROL[:4] in result.stdout + result.stderr:
        v.notes.append(f"{result.command()}: echoes raw terminal control characters from the file")
    if command != "resume":
        if bad.is_file() and digest(bad) != before:
            v.fail("lost", result.command(), "a reader changed the file it read")
        return
    problem, count = check_file(bad, timeout=READ_TIMEOUT) if bad.is_file() else ("absent", 0)
    if before_problem is None and (problem or count < before_n):
        v.fail("lost", result.command(), f"held {before_n} valid snapshots, now: {problem or count}")
    elif outcome == "ok" and before_problem is None and count < 3:
        v.fail("other", result.command(), f"exit 0 but the resumed file holds {count} of 3 snapshots")
    elif outcome == "ok" and (problem or count < 3):
        # the file was damaged before gflow touched it: --resume did not notice (not a loss)
        v.notes.append(f"{result.command()}: exit 0 on a damaged file ({before_problem})")
