"""Classes a (malformed case files) and f (symlinks and paths) of the fault suite."""
from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import tomli_w

from .context import CASES, SMALL, Trial, copy as copy_file, shrunk
from .harness import check_file, digest, gflow, judge, watch_outside

BUNDLED = sorted(p.stem for p in CASES.glob("*.toml"))
#: the bundled cases whose smoke size runs in a second or two (the default size uses only these)
QUICK = ["quickstart", "semicircle", "random_feature", "relu_bias_3d", "sgd_noise", "langevin"]


def _deep(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


#: replacements of one value of a case document: name -> rng -> value
VALUES = {
    "nan": lambda r: math.nan, "inf": lambda r: math.inf, "-inf": lambda r: -math.inf,
    "huge_float": lambda r: 1e300, "huge_int": lambda r: r.choice([10**30, 2**63 - 1, -(2**63), 2**62]),
    "negative": lambda r: -1, "zero": lambda r: 0, "tiny": lambda r: 1e-300, "bool": lambda r: True,
    "string": lambda r: "3", "unicode": lambda r: "\u00e9\u4e2d\U0001f600\u202e\u0000"[: r.randint(3, 5)],
    "huge_string": lambda r: "A" * r.choice([10**5, 10**6]), "empty_list": lambda r: [], "empty_table": lambda r: {},
    "deep": lambda r: _deep(r.choice([60, 500])), "list": lambda r: [1, "a", 2.5],
    "table": lambda r: {"x": 1}, "long_list": lambda r: [0.5] * r.choice([3, 10**5]),
}


def value_paths(node, prefix=()):
    """Every path (keys and list indices) to a value inside a TOML document; also the fuzz tests'."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from value_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix + (i,)
            yield from value_paths(v, prefix + (i,))


def mutate(doc: dict, rng) -> tuple[dict, str]:
    """1 to 3 edits of a case document: keys dropped, added, or given another value."""
    doc = copy.deepcopy(doc)
    done = []
    for _ in range(rng.randint(1, 3)):
        paths = list(value_paths(doc))
        if not paths:
            break
        path = rng.choice(paths)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        how = rng.choice(["drop", "add_key", *VALUES, *VALUES])
        where = ".".join(map(str, path))
        if how == "drop":
            del parent[last]
        elif how == "add_key":
            if isinstance(parent, dict):
                parent[rng.choice(["extra", "kind", "\u00e9", "a b", ""])] = 1
        else:
            parent[last] = VALUES[how](rng)
        done.append(f"{where}:{how}")
    return doc, ",".join(done)


def _insert(text: bytes, rng, piece: bytes) -> bytes:
    i = rng.randint(0, len(text))
    return text[:i] + piece + text[i:]


#: raw edits of a (valid, shrunk) case file's bytes: name -> (bytes, rng) -> bytes
RAW = {
    "bom": lambda t, r: b"\xef\xbb\xbf" + t,
    "utf16": lambda t, r: t.decode().encode("utf-16"),
    "bad_utf8": lambda t, r: _insert(t, r, r.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xfe\xff"])),
    "nul": lambda t, r: _insert(t, r, b"\x00"),
    "cut": lambda t, r: t[: r.randint(0, len(t))],
    "crlf": lambda t, r: t.replace(b"\n", b"\r\n"),
    "lone_cr": lambda t, r: t.replace(b"\n", b"\r"),
    "deep_array": lambda t, r: (f"deep = {'[' * (n := r.choice([1000, 100000]))}1{']' * n}\n").encode() + t,
    "deep_table": lambda t, r: (f"deep = {'{a = ' * (n := r.choice([1000, 50000]))}1{'}' * n}\n").encode() + t,
    "huge_value": lambda t, r: f'name = "{"x" * r.choice([10**6, 10**7])}"\n'.encode() + t.replace(b"name =", b"old ="),
    "many_keys": lambda t, r: t + b"\n[extra]\n" + b"".join(b"k%d = %d\n" % (i, i) for i in range(r.choice([1000, 200000]))),
    "long_int": lambda t, r: t.replace(b"snapshots = 3", b"snapshots = " + b"9" * r.choice([5000, 100000])),
    "long_float": lambda t, r: t.replace(b"snapshots = 3", b"snapshots = 3." + b"0" * r.choice([5000, 100000])),
    "power_bomb": lambda t, r: t + b'\n[bomb]\n' if b"potential" not in t else
    t.replace(b'potential = "', b'potential = "' + r.choice([b"9**9**9**9*", b"(x**99999)**99999*", b"x" * 3000 + b"*"])),
    "dup_table": lambda t, r: t + b"\n[grid]\ncells = [4]\n",
}

#: special files given as the case path
SPECIAL = ["directory", "fifo", "/dev/zero", "/dev/null", "/dev/urandom", "dangling", "loop", "missing",
           "sparse_4GiB", "/proc/self/environ"]


def _dump(doc) -> bytes | None:
    try:
        return tomli_w.dumps(doc).encode()
    except (TypeError, ValueError, RecursionError):
        return None


def _run_case(v, case_path, make):
    work = make()
    before = digest(case_path) if Path(case_path).is_file() and Path(case_path).stat().st_size < 2**26 else None
    r = gflow(["run", case_path, "-o", work / "out"], work)
    if before is not None and digest(case_path) != before:
        v.fail("lost", r.command(), "the case file changed")
    if judge(v, r) == "ok":
        for h5 in sorted((work / "out").glob("*.h5")):
            problem, _ = check_file(h5)
            if problem:
                v.fail("other", r.command(), f"exit 0 but {h5.name} fails gflow check: {problem}")


def malformed_cases(suite, rng, n, cls):
    names = BUNDLED if suite.full else QUICK
    for i in range(n):
        name = rng.choice(names)
        pick = rng.random()
        if pick < 0.65:
            doc, how = mutate(shrunk(name), rng)
            text = _dump(doc)
            if text is None:   # not expressible as TOML: a raw edit instead
                pick, how = 0.7, ""
        if 0.65 <= pick < 0.9:
            how = rng.choice(sorted(RAW))
            text = RAW[how](_dump(shrunk(name)), rng)
        if pick >= 0.9:
            how = rng.choice(SPECIAL)
            yield Trial(cls, f"{name}:{how}", _special, suite, cls, how)
            continue
        yield Trial(cls, f"{name}:{how}", _text_case, suite, cls, text)


def _text_case(v, suite, cls, text: bytes):
    work, _ = suite.folder(cls)
    path = work / "case.toml"
    path.write_bytes(text)
    _run_case(v, path, lambda: work)


def _special(v, suite, cls, how: str):
    work, _ = suite.folder(cls)
    path = work / "case.toml"
    if how == "directory":
        path.mkdir()
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "dangling":
        path.symlink_to(work / "absent.toml")
    elif how == "loop":
        path.symlink_to(path)
    elif how == "sparse_4GiB":
        with open(path, "wb") as f:
            f.write(b'name = "')
            f.truncate(4 * 2**30)
    elif how.startswith("/"):
        path = Path(how)
    _run_case(v, path, lambda: work)


# --- class f: symlinks and paths ---------------------------------------------------------------

MULTI = """
[[solvers]]
kind = "fv"

[[solvers]]
kind = "particle"
particles = 300
"""


def _multi_case(work: Path) -> Path:
    text = (CASES / "quickstart.toml").read_text()
    text = text.replace('[solver]\nkind = "fv"\n', MULTI)
    path = work / "multi.toml"
    path.write_text(text)
    return path


def _path_trial(v, suite, cls, kind: str, flag: str):
    work, outside = suite.folder(cls)
    canary = outside.canary("canary")
    out = work / "out"
    out.mkdir()
    case, args = CASES / "quickstart.toml", [*SMALL, *([flag] if flag else [])]
    keep = {}                                   # files of the input that must stay as they were
    expect_runs = ["fv.h5"]
    if kind == "run_symlink_dangling":
        (out / "fv.h5").symlink_to(outside.path / "absent.h5")
    elif kind == "run_symlink_canary":
        (out / "fv.h5").symlink_to(canary)
    elif kind == "run_symlink_real_run":
        real = copy_file(suite.base("fv"), outside.path / "real.h5")
        (out / "fv.h5").symlink_to(real)
    elif kind == "lock_symlink_canary":
        (out / ".fv.h5.lock").symlink_to(canary)
    elif kind == "lock_symlink_dangling":
        (out / ".fv.h5.lock").symlink_to(outside.path / "absent.lock")
    elif kind == "out_is_file":
        out.rmdir()
        out.write_text("a file, not a folder\n")
        keep[out] = digest(out)
    elif kind == "out_parent_is_file":
        (work / "file").write_text("a file\n")
        keep[work / "file"] = digest(work / "file")
        out = work / "file" / "sub"
    elif kind == "out_proc":
        out = Path("/proc/gflow-fault-suite")
    elif kind == "out_proc_self":
        out = Path("/proc/self")
    elif kind == "out_devnull":
        out = Path("/dev/null")
    elif kind == "out_too_long":
        out = work / ("x" * 300)
    elif kind in ("compare_txt_symlink", "compare_txt_dir", "compare_png_symlink", "compare_txt_file"):
        case, args = _multi_case(work), [a for a in SMALL] + ([flag] if flag else [])
        expect_runs = ["fv.h5", "particle.h5"]
        if kind == "compare_txt_dir":
            (out / "compare.txt").mkdir()
        elif kind == "compare_txt_file":
            (out / "compare.txt").write_text("an earlier report\n")
        else:
            (out / ("compare.txt" if kind == "compare_txt_symlink" else "compare.png")).symlink_to(canary)
    elif kind == "plot_png_symlink":
        run = copy_file(suite.base("fv"), work / "run.h5")
        (work / "run.png").symlink_to(canary)
        keep[run] = digest(run)
        outside.arm()
        r = gflow(["plot", run], work)
        watch_outside(v, outside, r.command(), may_read=True)
        judge(v, r)
        _kept(v, keep, r.command())
        return
    outside.arm()
    r = gflow(["run", case, "-o", out, *args], work)
    # reading through a symlink the user put in the output folder is harmless; writing is not
    watch_outside(v, outside, r.command(), may_read=True)
    if judge(v, r) == "ok" and out.is_dir():
        for name in expect_runs:
            problem, _ = check_file(out / name)
            if problem:
                v.fail("other", r.command(), f"exit 0 but {name} fails gflow check: {problem}")
    _kept(v, keep, r.command())


def _kept(v, keep, command):
    for path, before in keep.items():
        if digest(path) != before:
            v.fail("lost", command, f"{path.name} changed")


PATH_KINDS = ["run_symlink_dangling", "run_symlink_canary", "run_symlink_real_run", "lock_symlink_canary",
              "lock_symlink_dangling", "out_is_file", "out_parent_is_file", "out_proc", "out_proc_self",
              "out_devnull", "out_too_long", "compare_txt_symlink", "compare_txt_dir", "compare_png_symlink",
              "compare_txt_file", "plot_png_symlink"]
FLAGS = ["", "--force", "--resume"]


def paths(suite, rng, n, cls):
    combos = [(k, f) for f in FLAGS for k in PATH_KINDS if not (k == "plot_png_symlink" and f)]
    if n < len(combos):   # the default size: the kinds most likely to go wrong, each once, in seeded order
        firsts = [(k, "--force" if "symlink" in k else "") for k in PATH_KINDS]
        rng.shuffle(firsts)
        combos = firsts[:n]
    for i in range(n):
        kind, flag = combos[i % len(combos)]
        yield Trial(cls, f"{kind}{' ' + flag if flag else ''}", _path_trial, suite, cls, kind, flag)
