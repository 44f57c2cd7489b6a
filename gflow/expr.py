"""Safe arithmetic expressions for case files.

Case files (TOML) describe potentials and initial data as text such as
``"0.5*r**2 - log(r)"``.  A case file must never be able to run code, so the
text is never handed to ``eval``/``exec``/``compile``: it is parsed with
``ast.parse``, checked node by node against a whitelist, and converted into a
private immutable tree that only this module evaluates (with numpy) and
differentiates (symbolically, exactly).

Allowed: int/float literals, the declared variable names, ``pi``, binary
``+ - * / **``, unary ``+ -``, parentheses, and one-argument calls of
``exp, log, sqrt, sin, cos, tanh, abs``.  All else raises `ExpressionError`.
"""
from __future__ import annotations

import ast
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from keyword import iskeyword

import numpy as np

__all__ = ["Expression", "ExpressionError", "evaluate_together", "node_count", "parse_expression"]

FUNCTIONS = ("exp", "log", "sqrt", "sin", "cos", "tanh", "abs")
MAX_LENGTH = 2000
# Far beyond any real potential, yet low enough that a second derivative (a
# deeper tree than its source) still evaluates within Python's recursion limit.
MAX_DEPTH = 100
# "sign" arises only as the derivative of abs; case files cannot call it.
_UFUNCS = {f: getattr(np, f) for f in FUNCTIONS + ("sign",)}
# Binary operators: numpy ufunc and printing precedence.
_OPS = {"+": (np.add, 1), "-": (np.subtract, 1), "*": (np.multiply, 2),
        "/": (np.divide, 2), "**": (np.power, 4)}
_AST_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_NEG_PREC, _ATOM_PREC = 3, 5


class ExpressionError(ValueError):
    """An expression or variable list was refused; the message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Neg:
    arg: object


@dataclass(frozen=True)
class Call:
    func: str
    arg: object


@dataclass(frozen=True)
class Bin:
    op: str
    a: object
    b: object


ZERO, ONE, TWO = Num(0.0), Num(1.0), Num(2.0)


def _eval(n, env, memo):
    # Derivatives share subtrees with their source, so `memo` (by node id)
    # evaluates each distinct node once.  numpy ufuncs even for constants:
    # 0.0**-1 gives inf and (-8)**(1/3) nan, where Python would raise or
    # turn complex.
    if isinstance(n, Num):
        return n.value
    if isinstance(n, Var):
        return env[n.name]
    if id(n) not in memo:
        if isinstance(n, Neg):
            memo[id(n)] = np.negative(_eval(n.arg, env, memo))
        elif isinstance(n, Call):
            memo[id(n)] = _UFUNCS[n.func](_eval(n.arg, env, memo))
        else:
            memo[id(n)] = _OPS[n.op][0](_eval(n.a, env, memo), _eval(n.b, env, memo))
    return memo[id(n)]


def _names(n) -> frozenset:
    if isinstance(n, Var):
        return frozenset([n.name])
    if isinstance(n, (Neg, Call)):
        return _names(n.arg)
    return _names(n.a) | _names(n.b) if isinstance(n, Bin) else frozenset()


def _prec(n) -> int:
    if isinstance(n, Bin):
        return _OPS[n.op][1]
    negative = isinstance(n, Neg) or (isinstance(n, Num) and n.value < 0)
    return _NEG_PREC if negative else _ATOM_PREC


def _str(n) -> str:
    if isinstance(n, Num):
        v = n.value
        if v == math.pi:
            return "pi"
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(n, Var):
        return n.name
    if isinstance(n, Call):
        return f"{n.func}({_str(n.arg)})"
    if isinstance(n, Neg):
        return "-" + _wrap(n.arg, _prec(n.arg) < _NEG_PREC)
    # Parenthesise so the text re-parses to this very tree: ** groups to the
    # right, the other operators to the left.
    p, right_assoc = _prec(n), n.op == "**"
    left = _wrap(n.a, _prec(n.a) < p + right_assoc)
    right = _wrap(n.b, _prec(n.b) < p + (not right_assoc))
    return left + (n.op if p > 1 else f" {n.op} ") + right


def _wrap(n, paren: bool) -> str:
    return f"({_str(n)})" if paren else _str(n)


def _fold(n) -> Num:
    with np.errstate(all="ignore"):
        return Num(float(_eval(n, {}, {})))


def _negative(n) -> bool:
    """Whether `_neg` can drop a minus sign from `n` (so it cannot loop)."""
    if isinstance(n, Bin) and n.op == "*":
        return isinstance(n.a, Num) and n.a.value < 0
    return isinstance(n, Neg) or (isinstance(n, Num) and n.value < 0)


def _bin(op, a, b):
    """``a op b``, with constants folded and trivial terms dropped.

    Derivatives are built with this so that, e.g., d/dx 0.5*x**2 is just x.
    """
    if isinstance(a, Num) and isinstance(b, Num):
        return _fold(Bin(op, a, b))
    if op in ("+", "-"):
        if _negative(b):  # a + -b -> a - b, a - -b -> a + b
            return _bin("-" if op == "+" else "+", a, _neg(b))
        if b == ZERO:
            return a
        if a == ZERO:
            return b if op == "+" else _neg(b)
    elif op == "*":
        if isinstance(b, Num):
            a, b = b, a  # constants to the left, where they meet and fold
        if a == ZERO or a == ONE:
            return a if a == ZERO else b
        if a == Num(-1.0):
            return _neg(b)
        if isinstance(a, Neg) or isinstance(b, Neg):  # pull signs out front
            return _neg(_bin("*", a.arg, b) if isinstance(a, Neg) else _bin("*", a, b.arg))
        if isinstance(a, Num) and isinstance(b, Bin) and b.op == "*" and isinstance(b.a, Num):
            return _bin("*", _fold(Bin("*", a, b.a)), b.b)
        if isinstance(a, Bin) and a.op == "/" and a.a == ONE:
            return _bin("/", b, a.b)
    elif op == "/":
        if _negative(a):
            return _neg(_bin("/", _neg(a), b))
        if a == ZERO or b == ONE:
            return a
    elif b == ZERO or b == ONE:  # "**"
        return ONE if b == ZERO else a
    return Bin(op, a, b)


def _neg(a):
    """``-a``, absorbing the sign into a constant factor where there is one."""
    if isinstance(a, Num):
        return Num(-a.value)
    if isinstance(a, Neg):
        return a.arg
    if isinstance(a, Bin) and a.op == "*" and isinstance(a.a, Num):
        return _bin("*", Num(-a.a.value), a.b)
    return Neg(a)


def _call(f, a):
    return _fold(Call(f, a)) if isinstance(a, Num) else Call(f, a)


_add, _sub, _mul, _div, _power = (partial(_bin, op) for op in _OPS)
_OUTER = {  # f'(u) given the node f(u), reused where it reappears
    "exp": lambda f: f,
    "log": lambda f: _div(ONE, f.arg),
    "sqrt": lambda f: _div(ONE, _mul(TWO, f)),
    "sin": lambda f: _call("cos", f.arg),
    "cos": lambda f: _neg(_call("sin", f.arg)),
    "tanh": lambda f: _sub(ONE, _power(f, TWO)),
    "abs": lambda f: _call("sign", f.arg),
    "sign": lambda f: ZERO,
}


def _diff(n, x, memo):
    # Memoised by node id, since derivatives of derivatives share subtrees.
    if isinstance(n, Num | Var):
        return ONE if n == Var(x) else ZERO
    if id(n) not in memo:
        memo[id(n)] = _rule(n, partial(_diff, x=x, memo=memo))
    return memo[id(n)]


def _rule(n, d):
    """Derivative of the node `n`, given `d`, the derivative of a subtree."""
    if isinstance(n, Neg):
        return _neg(d(n.arg))
    if isinstance(n, Call):
        return _mul(_OUTER[n.func](n), d(n.arg))
    u, v = n.a, n.b
    du, dv = d(u), d(v)
    if n.op in ("+", "-"):
        return _bin(n.op, du, dv)
    if n.op == "*":
        return _add(_mul(du, v), _mul(u, dv))
    if n.op == "/":
        return _div(du, v) if dv == ZERO else _div(_sub(_mul(du, v), _mul(u, dv)), _power(v, TWO))
    if dv == ZERO:  # u**c: the plain power rule, which also holds for u <= 0
        return _mul(_mul(v, _power(u, _sub(v, ONE))), du)
    return _mul(n, _add(_mul(dv, _call("log", u)), _div(_mul(v, du), u)))


class Expression:
    """A parsed, vectorised, differentiable expression.

    Build one with `parse_expression`, not directly.

    Attributes
    ----------
    text : str
        The original text (for a derivative: its printed form).
    variables : tuple of str
        The allowed variable names, in positional-argument order.
    """

    def __init__(self, tree, variables: Sequence[str], text: str | None = None):
        self._tree = tree
        self.variables = tuple(variables)
        self._text = text
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        self._signature = inspect.Signature([inspect.Parameter(v, kind) for v in self.variables])

    def __call__(self, *args, **kwargs):
        """Evaluate with numpy, elementwise.

        Parameters
        ----------
        *args, **kwargs : array_like
            Values of all `variables`, in their order or by name.

        Returns
        -------
        float or numpy.ndarray
            A float if every input is a scalar, else an array of the inputs'
            broadcast shape (even for a constant expression).
        """
        env = self._signature.bind(*args, **kwargs).arguments
        for name, value in env.items():
            a = np.asarray(value)  # integers would break x**-1
            env[name] = a if a.dtype.kind in "fc" else a.astype(float)
        shape = np.broadcast(*env.values()).shape if env else ()
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.asarray(_eval(self._tree, env, {}))
        return out.item() if shape == () else np.array(np.broadcast_to(out, shape))

    @property
    def text(self) -> str:
        # Printed lazily: a derivative's text can be long and is rarely read.
        return str(self) if self._text is None else self._text

    def diff(self, name: str) -> Expression:
        """Exact symbolic derivative with respect to the variable `name`."""
        self._check(name)
        return Expression(_diff(self._tree, name, {}), self.variables)

    def uses(self, name: str) -> bool:
        """Whether the variable `name` occurs in the expression."""
        self._check(name)
        return name in _names(self._tree)

    def _check(self, name):
        if name not in self.variables:
            names = ", ".join(self.variables)
            raise ExpressionError(f"unknown variable {name!r} (variables: {names})")

    def __str__(self) -> str:
        return _str(self._tree)

    def __repr__(self) -> str:
        return f"Expression({str(self)!r}, variables={self.variables!r})"


def evaluate_together(expressions: Sequence[Expression], env: dict) -> list[np.ndarray]:
    """Several expressions (a function and its derivatives, say) evaluated over one environment
    with one memo: a derivative's tree shares subtrees with its source (d/dy exp(u) is exp(u)
    times du/dy), so each distinct node is computed once for all of them.

    `env` maps every variable to a float array; the values keep numpy's broadcast shapes (a
    derivative that does not depend on some variable is not spread along it; a constant one
    is a 0-d array), so the caller broadcasts where it needs a full shape.
    """
    memo: dict = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        return [np.asarray(_eval(e._tree, env, memo)) for e in expressions]


def node_count(expressions: Sequence[Expression]) -> int:
    """Distinct operation nodes of the expressions' trees: the most arrays `evaluate_together`
    holds at once (a caller sizes its chunks by it)."""
    seen: set[int] = set()
    stack = [e._tree for e in expressions]
    while stack:
        n = stack.pop()
        if isinstance(n, Num | Var) or id(n) in seen:
            continue
        seen.add(id(n))
        stack.extend((n.arg,) if isinstance(n, Neg | Call) else (n.a, n.b))
    return len(seen)


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def _convert(node, src: str, variables: tuple, depth: int):
    """Whitelist one AST node (and its children) into the private tree."""
    if depth > MAX_DEPTH:
        raise ExpressionError(f"expression nested too deeply (limit {MAX_DEPTH} levels)")
    down = partial(_convert, src=src, variables=variables, depth=depth + 1)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):  # not bool
        try:
            return Num(float(node.value))
        except OverflowError:
            raise ExpressionError(f"number too large: {_clip(str(node.value))}") from None
    if isinstance(node, ast.Name):
        if node.id in variables:
            return Var(node.id)
        if node.id == "pi":
            return Num(math.pi)
        if node.id in FUNCTIONS:
            raise ExpressionError(f"function '{node.id}' must be called, as in {node.id}(x)")
        allowed = ", ".join(variables + ("pi",))
        raise ExpressionError(f"unknown name {node.id!r} (allowed: {allowed})")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        arg = down(node.operand)
        if isinstance(node.op, ast.UAdd):
            return arg
        return _neg(arg) if isinstance(arg, Num) else Neg(arg)  # "-2" is a literal
    if isinstance(node, ast.BinOp) and type(node.op) in _AST_OPS:
        return Bin(_AST_OPS[type(node.op)], down(node.left), down(node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        f = node.func.id
        if f not in FUNCTIONS:
            raise ExpressionError(f"unknown function {f!r} (allowed: {', '.join(FUNCTIONS)})")
        if len(node.args) != 1 or node.keywords or isinstance(node.args[0], ast.Starred):
            raise ExpressionError(f"{f}() takes exactly one positional argument")
        return Call(f, down(node.args[0]))
    kind = type(node).__name__
    if isinstance(node, ast.Constant):
        kind = f"{type(node.value).__name__} constant"
    elif isinstance(node, ast.BinOp | ast.UnaryOp):
        kind = f"operator {type(node.op).__name__}"
    snippet = ast.get_source_segment(src, node) or kind
    raise ExpressionError(f"not allowed in an expression: {_clip(snippet)!r} ({kind})")


def parse_expression(text: str, variables: Sequence[str]) -> Expression:
    """Parse `text` by whitelist into an `Expression`; no code is ever run.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"0.5*r**2 - log(r)"``.
    variables : sequence of str
        The variable names it may use, in positional-argument order.

    Returns
    -------
    Expression

    Raises
    ------
    ExpressionError
        If `text` or `variables` is not acceptable.
    """
    variables = (variables,) if isinstance(variables, str) else tuple(variables)
    for v in variables:
        reserved = iskeyword(v) or v in FUNCTIONS + ("pi", "sign")
        if not (isinstance(v, str) and v.isidentifier()) or reserved:
            raise ExpressionError(f"{v!r} cannot be a variable name")
    if len(set(variables)) != len(variables):
        raise ExpressionError(f"repeated variable names in {variables!r}")
    if not isinstance(text, str):
        raise ExpressionError(f"expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression too long ({len(text)} characters, limit {MAX_LENGTH})")
    # Newlines (TOML multi-line strings) and leading blanks would be syntax
    # errors otherwise; no allowed token contains whitespace.
    src = " ".join(text.split())
    if not src:
        raise ExpressionError("empty expression")
    try:
        tree = ast.parse(src, mode="eval")
    except (SyntaxError, ValueError) as err:  # ValueError: null bytes, Python < 3.12
        raise ExpressionError(f"cannot parse {_clip(src)!r}: {getattr(err, 'msg', err)}") from None
    try:
        return Expression(_convert(tree.body, src, variables, 0), variables, text)
    except RecursionError:  # MAX_DEPTH should stop it first; belt and braces
        raise ExpressionError("expression nested too deeply") from None
