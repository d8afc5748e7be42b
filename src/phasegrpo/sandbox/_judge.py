"""Judging tests where the program cannot reach: the worker decides, the program only supplies values.

A test such as `assert set(f(x)) == set([1, 2])` is split in the worker (trusted) into

* leaves: the smallest subexpressions that need the program (`f(x)`), sent to the sandboxed
  child as source text, evaluated there and sent back as plain data (exact builtin types only);
* a trusted remainder (`set(<leaf 0>) == set([1, 2])`), evaluated in the worker on the decoded
  values with the real builtins.

So the expected value never enters the child, an object whose `__eq__` always answers True (or
a subclass of `int`/`list`/... doing so) cannot be serialized and fails, and rebinding builtins
inside the child cannot change what `set`, `sorted`, `math.isclose`, `==` mean for the verdict.
Names of builtins in tests always mean the real builtins, even if the program defines its own.

This module is imported by the worker script with `python -I -S`: standard library only.
"""

from __future__ import annotations

import ast
import builtins
import collections
import json
import math

# Builtins a test may apply to the program's values; the worker runs the real ones.
_SAFE_CALLS = {
    name: getattr(builtins, name)
    for name in (
        "abs", "all", "any", "bool", "complex", "dict", "float", "frozenset", "int", "len", "list",
        "max", "min", "round", "set", "sorted", "str", "sum", "tuple",
    )
}
_SAFE_MATH = {name: getattr(math, name) for name in (
    "ceil", "e", "fabs", "floor", "inf", "isclose", "isfinite", "isinf", "isnan", "nan", "pi", "sqrt",
)}
_MAX_POW_EXPONENT = 4096
MAX_DEPTH = 64


class TestPlan:
    """One test: statements the child executes, and per assert the trusted expression + leaves."""

    def __init__(self, steps: list, judges: list):
        self.steps = steps  # [("exec", source) | ("assert", [leaf source, ...])], sent to the child
        self.judges = judges  # one compiled trusted expression per assert, kept in the worker


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
    return frozenset(names & set(_SAFE_CALLS))


def plan_test(source: str, shadowed: frozenset[str] = frozenset()) -> TestPlan:
    """Split one test's source into child steps and worker-side judges; raises SyntaxError.

    A builtin the program redefines (`shadowed`) means the program's function on the left of a
    comparison, where the call under test stands, and the real builtin on the right, where the
    expected value stands: `def set(*a): return 0` cannot make `set(f(x)) == set([1, 2])` pass.
    """
    module = ast.parse(source)
    steps, judges = [], []
    for statement in module.body:
        if isinstance(statement, ast.Assert):
            leaves: list[str] = []
            trusted = _trusted(statement.test, leaves, shadowed)
            expression = ast.fix_missing_locations(ast.Expression(trusted))
            judges.append(compile(expression, "<test>", "eval"))
            steps.append(("assert", leaves))
        else:
            steps.append(("exec", ast.unparse(statement)))
    return TestPlan(steps, judges)


def _leaf(node: ast.expr, leaves: list[str]) -> ast.expr:
    leaves.append(ast.unparse(node))
    return ast.Name(id=f"_leaf{len(leaves) - 1}", ctx=ast.Load())


def _is_safe_callee(node: ast.expr, shadowed: frozenset[str] = frozenset()) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _SAFE_CALLS and node.id not in shadowed
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "math" \
        and node.attr in _SAFE_MATH


def _is_literal(node: ast.expr, shadowed: frozenset[str] = frozenset()) -> bool:
    """True if the worker can compute `node` alone, cheaply: literals and arithmetic on them."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(_is_literal(element, shadowed) for element in node.elts)
    if isinstance(node, ast.Dict):
        return all(key is not None and _is_literal(key, shadowed) for key in node.keys) and all(_is_literal(value, shadowed) for value in node.values)
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand, shadowed)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            exponent = node.right
            if not (isinstance(exponent, ast.Constant) and type(exponent.value) is int
                    and abs(exponent.value) <= _MAX_POW_EXPONENT):
                return False
        return isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)) \
            and _is_literal(node.left, shadowed) and _is_literal(node.right, shadowed)
    if isinstance(node, ast.Call):
        return _is_safe_callee(node.func, shadowed) and all(_is_literal(arg, shadowed) for arg in node.args) \
            and all(keyword.arg is not None and _is_literal(keyword.value, shadowed) for keyword in node.keywords)
    if isinstance(node, ast.Attribute):
        return _is_safe_callee(node)
    return False


def _trusted(node: ast.expr, leaves: list[str], shadowed: frozenset[str]) -> ast.expr:
    """Rewrite `node` so that everything needing the program is a `_leafN` name."""
    if _is_literal(node, shadowed):
        return node
    if isinstance(node, (ast.List, ast.Tuple)) and not any(isinstance(e, ast.Starred) for e in node.elts):
        return type(node)(elts=[_trusted(element, leaves, shadowed) for element in node.elts], ctx=ast.Load())
    if isinstance(node, ast.Set) and not any(isinstance(e, ast.Starred) for e in node.elts):
        return ast.Set(elts=[_trusted(element, leaves, shadowed) for element in node.elts])
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        return ast.Dict(keys=[_trusted(key, leaves, shadowed) for key in node.keys],
                        values=[_trusted(value, leaves, shadowed) for value in node.values])
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ast.UnaryOp(op=node.op, operand=_trusted(node.operand, leaves, shadowed))
    if isinstance(node, ast.BoolOp):
        return ast.BoolOp(op=node.op, values=[_trusted(value, leaves, shadowed) for value in node.values])
    if isinstance(node, ast.Compare):  # expected values stand on the right: real builtins there
        return ast.Compare(left=_trusted(node.left, leaves, shadowed), ops=node.ops,
                           comparators=[_trusted(c, leaves, frozenset()) for c in node.comparators])
    if isinstance(node, ast.Call) and _is_safe_callee(node.func, shadowed) \
            and not any(isinstance(arg, ast.Starred) for arg in node.args) \
            and all(keyword.arg is not None for keyword in node.keywords):
        return ast.Call(func=node.func, args=[_trusted(arg, leaves, shadowed) for arg in node.args],
                        keywords=[ast.keyword(arg=k.arg, value=_trusted(k.value, leaves, shadowed))
                                  for k in node.keywords])
    return _leaf(node, leaves)


class _Math:
    """The only `math` the trusted expressions see."""

    def __init__(self):
        self.__dict__.update(_SAFE_MATH)


def judge(compiled, leaf_values: list) -> bool:
    """Evaluate one trusted assert expression on decoded leaf values; any exception means False."""
    namespace = {"__builtins__": {}, "math": _Math(), **_SAFE_CALLS}
    namespace.update((f"_leaf{index}", value) for index, value in enumerate(leaf_values))
    return bool(eval(compiled, namespace))  # noqa: S307 - only nodes admitted by _trusted


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
