"""Judging tests where the program cannot reach: the worker decides, the program only supplies values.

A test such as `assert abs(f(x) - 2.5) < 1e-9` is split in the worker (trusted) into

* leaves: the calls into the program (`f(x)`), sent to the sandboxed runner as source text,
  evaluated there and sent back as plain data (exact builtin types only);
* a trusted remainder (`abs(_leaf0 - 2.5) < 1e-9`), evaluated on the decoded values by the
  worker's judge process (`_judging`) with the real builtins, under a time and memory limit.

Everything that does not need the program (expected values, `set(range(3))`, tolerances,
arithmetic, indexing, method calls on returned values) is computed on the worker side, so no
expected value enters the runner, an object whose `__eq__` always answers True (or a subclass of
`int`/`list`/... doing so) cannot be serialized and fails, and rebinding or shadowing builtins
inside the program cannot change what `set`, `range`, `sorted`, `==` mean for the verdict. A
test shape whose judging would need the program's process (an assert inside a loop, a
comprehension over the program's values) is refused as "unsupported".

This module is imported by the worker script with `python -I -S`: standard library only.
"""

from __future__ import annotations

import ast
import builtins
import collections
import json
import math

# Builtins the worker side knows and runs for real (in the judge process), whatever the program binds.
WORKER_BUILTINS = {
    name: getattr(builtins, name)
    for name in (
        "abs", "all", "any", "bin", "bool", "bytes", "chr", "complex", "dict", "divmod", "enumerate", "filter",
        "float", "frozenset", "hash", "hex", "int", "isinstance", "len", "list", "map", "max", "min", "oct", "ord",
        "pow", "range", "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple", "type", "zip",
        "ArithmeticError", "Exception", "LookupError", "TypeError", "ValueError", "ZeroDivisionError",
    )
}
_WORKER_MODULES = {"math": math}
# Methods and attributes of plain values (str, list, dict, ...) that the worker side may apply to a
# returned value: `f(x).lower() == "a"` sends only `f(x)` to the program.
_VALUE_ATTRIBUTES = frozenset(
    name for kind in (str, bytes, list, tuple, dict, set, frozenset, int, float, complex)
    for name in dir(kind) if not name.startswith("_")
)
_TRANSPARENT = (ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.IfExp, ast.Subscript, ast.Slice, ast.List, ast.Tuple,
                ast.Set, ast.Dict, ast.Starred, ast.JoinedStr, ast.FormattedValue)
MAX_DEPTH = 64


class UnsupportedTest(ValueError):
    """A test shape that cannot be judged without trusting the program's process."""


class TestPlan:
    """One test: statements and leaves the runner executes, and the worker side's steps."""

    def __init__(self, steps: list, judge_steps: list):
        self.steps = steps  # [("exec", source) | ("assert", [leaf source, ...])], sent to the runner
        self.judge_steps = judge_steps  # [("let", source) | ("check", source)], run by the judge process

    @property
    def checks(self) -> int:
        return sum(kind == "check" for kind, _ in self.judge_steps)


def shadowed_builtins(code: str) -> frozenset[str]:
    """Builtins the program redefines at top level (MBPP task 126 asks for a function named `sum`)."""
    try:
        module = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # a pathologically deep expression too
        return frozenset()
    names = set()
    for statement in module.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(statement.name)
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in statement.names)
        elif isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names.update(node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name))
    return frozenset(names & (set(WORKER_BUILTINS) | set(_WORKER_MODULES)))


class _Scope:
    """Which names the worker side computes itself, as the test's statements bind them in order."""

    def __init__(self, shadowed: frozenset[str]):
        self.shadowed, self.bound = shadowed, {}  # bound: name -> True (worker side) / False (program's)

    def knows(self, name: str, expected_side: bool) -> bool:
        if name in self.bound:
            return self.bound[name]
        if name in self.shadowed and not expected_side:
            return False  # the program's own `sum` where the call under test stands
        return name in WORKER_BUILTINS or name in _WORKER_MODULES

    def needs_program(self, node: ast.AST, expected_side: bool) -> bool:
        local = {target.id for target in ast.walk(node) if isinstance(target, ast.Name)
                 and isinstance(target.ctx, ast.Store)}
        local |= {argument.arg for argument in ast.walk(node) if isinstance(argument, ast.arg)}
        return any(isinstance(name, ast.Name) and isinstance(name.ctx, ast.Load) and name.id not in local
                   and not self.knows(name.id, expected_side) for name in ast.walk(node))


def plan_test(source: str, shadowed: frozenset[str] = frozenset()) -> TestPlan:
    """Split one test's source into runner steps and worker-side steps; raises SyntaxError or UnsupportedTest.

    A builtin the program redefines (`shadowed`) means the program's function on the left of a
    comparison, where the call under test stands, and the real builtin on the right, where the
    expected value stands: `def set(*a): return 0` cannot make `set(f(x)) == set([1, 2])` pass.
    """
    module = ast.parse(source)
    scope = _Scope(shadowed)
    steps, judge_steps = [], []
    for statement in module.body:
        if isinstance(statement, ast.Assert):
            leaves: list[str] = []
            trusted = _split(statement.test, leaves, scope, expected_side=False)
            judge_steps.append(("check", ast.unparse(trusted)))
            steps.append(("assert", leaves))
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.Assert):
                raise UnsupportedTest(f"an assert inside a {type(statement).__name__.lower()} statement; "
                                      "write each assert at the top level of the test")
        steps.append(("exec", ast.unparse(statement)))  # the runner needs the names for its calls
        targets = [node for node in ast.walk(statement) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)]
        if isinstance(statement, ast.Assign) and all(isinstance(node, (ast.Name, ast.Tuple, ast.List, ast.Starred))
                                                     for target in statement.targets for node in ast.walk(target)
                                                     if isinstance(node, ast.expr) and not isinstance(node, ast.Load)) \
                and not scope.needs_program(statement.value, expected_side=True):
            judge_steps.append(("let", ast.unparse(statement)))  # an expected value: computed on our side too
            scope.bound.update((node.id, True) for node in targets)
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            for alias in statement.names:
                name = (alias.asname or alias.name).split(".")[0]
                scope.bound[name] = name in _WORKER_MODULES and (alias.asname or alias.name) == name \
                    and isinstance(statement, ast.Import)
        else:
            scope.bound.update((node.id, False) for node in targets)
    return TestPlan(steps, judge_steps)


def _leaf(node: ast.expr, leaves: list[str]) -> ast.expr:
    leaves.append(ast.unparse(node))
    return ast.Name(id=f"_leaf{len(leaves) - 1}", ctx=ast.Load())


def _split(node: ast.AST, leaves: list[str], scope: _Scope, expected_side: bool):
    """`node` with every call into the program replaced by a `_leafN` name; the rest stays ours."""
    if not isinstance(node, ast.AST) or not scope.needs_program(node, expected_side):
        return node
    if isinstance(node, ast.Compare):  # expected values stand on the right: real builtins there
        return ast.Compare(left=_split(node.left, leaves, scope, expected_side), ops=node.ops,
                           comparators=[_split(c, leaves, scope, True) for c in node.comparators])
    if isinstance(node, ast.Call):
        callee = node.func
        ours = isinstance(callee, ast.Name) or (
            isinstance(callee, ast.Attribute) and isinstance(callee.value, ast.Name)
            and callee.value.id in _WORKER_MODULES and scope.knows(callee.value.id, expected_side))
        method = isinstance(callee, ast.Attribute) and callee.attr in _VALUE_ATTRIBUTES and not ours
        if ours and not scope.needs_program(callee, expected_side) or method:
            func = ast.Attribute(value=_split(callee.value, leaves, scope, expected_side), attr=callee.attr,
                                 ctx=ast.Load()) if method else callee
            return ast.Call(func=func, args=[_split(arg, leaves, scope, expected_side) for arg in node.args],
                            keywords=[ast.keyword(arg=k.arg, value=_split(k.value, leaves, scope, expected_side))
                                      for k in node.keywords])
        return _leaf(node, leaves)
    if isinstance(node, ast.Name):
        return _leaf(node, leaves)
    if isinstance(node, ast.Attribute):
        if node.attr in _VALUE_ATTRIBUTES:
            return ast.Attribute(value=_split(node.value, leaves, scope, expected_side), attr=node.attr, ctx=ast.Load())
        return _leaf(node, leaves)
    if isinstance(node, _TRANSPARENT):
        fields = {}
        for name, value in ast.iter_fields(node):
            if isinstance(value, list):
                value = [_split(item, leaves, scope, expected_side) for item in value]
            elif isinstance(value, ast.expr):
                value = _split(value, leaves, scope, expected_side)
            fields[name] = value
        return type(node)(**fields)
    raise UnsupportedTest(f"the program's values inside a {type(node).__name__} cannot be judged outside the program")


def judge_builtins() -> dict:
    """The only builtins the worker side's expressions see."""
    return dict(WORKER_BUILTINS)


# ---- plain-data codec: the child encodes (exact builtin types only), the worker decodes ----

class NotPlainData(TypeError):
    pass


def encode(value, depth: int = 0):
    """Tagged JSON-able tree for exact builtin values; anything else raises NotPlainData."""
    if depth > MAX_DEPTH:
        raise NotPlainData("value nested too deeply")
    kind = type(value)
    if value is None:
        return ["n"]
    if kind is bool:
        return ["b", 1 if value else 0]
    if kind is int:
        return ["i", hex(value)]
    if kind is float:
        return ["f", float.__repr__(value)]
    if kind is complex:
        return ["c", float.__repr__(value.real), float.__repr__(value.imag)]
    if kind is str:
        return ["s", str.__str__(value)]
    if kind is bytes:
        return ["y", bytes.hex(value)]
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        tag = {list: "l", tuple: "t", set: "S", frozenset: "F"}[kind]
        return [tag, [encode(item, depth + 1) for item in kind.__iter__(value)]]
    if kind is dict or kind is collections.Counter or kind is collections.OrderedDict \
            or kind is collections.defaultdict:  # the standard library's dicts compare as dicts
        return ["d", [[encode(key, depth + 1), encode(item, depth + 1)] for key, item in dict.items(value)]]
    raise NotPlainData(f"value of type {kind.__name__!s:.80} is not plain data (int, float, str, list, ...)")


def decode(tree, depth: int = 0):
    """Inverse of `encode` for untrusted input: builds only builtin values; ValueError if malformed."""
    if depth > MAX_DEPTH or type(tree) is not list or not tree or type(tree[0]) is not str:
        raise ValueError("malformed value")
    tag, args = tree[0], tree[1:]
    if tag == "n" and not args:
        return None
    if len(args) == 1 and type(args[0]) in (int, str):
        (arg,) = args
        if tag == "b" and arg in (0, 1):
            return bool(arg)
        if tag == "i" and type(arg) is str:
            return int(arg, 16)
        if tag == "f" and type(arg) is str:
            return float(arg)
        if tag == "s" and type(arg) is str:
            return arg
        if tag == "y" and type(arg) is str:
            return bytes.fromhex(arg)
    if tag == "c" and len(args) == 2 and all(type(arg) is str for arg in args):
        return complex(float(args[0]), float(args[1]))
    if len(args) == 1 and type(args[0]) is list:
        items = args[0]
        if tag == "d":
            pairs = []
            for pair in items:
                if type(pair) is not list or len(pair) != 2:
                    raise ValueError("malformed dict")
                pairs.append((decode(pair[0], depth + 1), decode(pair[1], depth + 1)))
            return dict(pairs)
        builder = {"l": list, "t": tuple, "S": set, "F": frozenset}.get(tag)
        if builder is not None:
            return builder(decode(item, depth + 1) for item in items)
    raise ValueError(f"malformed value tag {tag[:8]!r}")


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def loads(data: bytes):
    return json.loads(data.decode("utf-8"))
