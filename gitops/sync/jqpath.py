"""The path expressions of jq that Argo CD's `jqPathExpressions` are written in (pure).

A bounded subset, evaluated here rather than by libjq (which would run a repo's arbitrary
program, loops and `$ENV` included, inside the agent): a path of `.field`, `."quoted"`,
`["key"]`, `[N]`, `[]` (each optionally `?`), piped through `select(COND)` and more
path, where COND compares paths and literals (`==`, `!=`, `<`, `<=`, `>`, `>=`), calls
`startswith`, `endswith`, `contains`, `test` or `has`, and combines with `and`, `or`,
`not` and parentheses. Anything else is refused with its position.

    .spec.template.spec.initContainers[] | select(.name == "istio-init")
    .metadata.annotations["deployment.kubernetes.io/revision"]
    .webhooks[]?.clientConfig.caBundle
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from gitops.errors import GitopsError

MAX_LENGTH = 1000

Path = tuple[str | int, ...]
_TOKEN = re.compile(r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op>==|!=|<=|>=|<|>|\|)
  | (?P<punct>[.\[\]()?,])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
)""", re.VERBOSE)
_FUNCS = ("startswith", "endswith", "contains", "test", "has")


class JqError(GitopsError, ValueError):
    """An expression outside the supported subset, with where."""


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise JqError(f"unsupported jq at position {pos + 1}: {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


# A compiled step: (path, value) -> the (path, value) pairs it leads to.
Step = Callable[[Path, Any], Iterator[tuple[Path, Any]]]
Cond = Callable[[Any], bool]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    # -- helpers
    def peek(self, text: str | None = None, kind: str | None = None) -> bool:
        if self.i >= len(self.toks):
            return False
        tok = self.toks[self.i]
        return (text is None or tok.text == text) and (kind is None or tok.kind == kind)

    def take(self, text: str | None = None, kind: str | None = None) -> _Tok:
        if not self.peek(text, kind):
            where = self.toks[self.i].pos + 1 if self.i < len(self.toks) else len(self.text)
            want = repr(text) if text else kind
            raise JqError(f"expected {want} at position {where} of {self.text!r}")
        self.i += 1
        return self.toks[self.i - 1]

    def done(self) -> bool:
        return self.i >= len(self.toks)

    # -- grammar
    def program(self) -> list[Step]:
        self._must_be_path()
        steps = self.path()
        while self.peek("|"):
            self.take("|")
            if self.peek("select"):
                self.take("select")
                self.take("(")
                cond = self.cond()
                self.take(")")
                steps.append(_select(cond))
                if self.peek(".") or self.peek("["):
                    steps += self.path()
            else:
                self._must_be_path()
                steps += self.path()
        if not self.done():
            tok = self.toks[self.i]
            raise JqError(f"unsupported jq at position {tok.pos + 1}: {tok.text!r}")
        return steps

    def _must_be_path(self) -> None:
        if not self.peek("."):
            tok = self.toks[self.i] if self.i < len(self.toks) else None
            where = f"position {tok.pos + 1}: {tok.text!r}" if tok else "the end"
            raise JqError(f"unsupported jq at {where} (paths such as .spec.replicas, "
                          "[] and select(...) are supported)")

    def path(self) -> list[Step]:
        """`.`-started path: .a.b["c"][0][]? ; "." alone is the value itself."""
        steps: list[Step] = []
        self.take(".")
        if self.peek(kind="word") or self.peek(kind="string"):
            steps.append(_field(self._key()))
        while self.peek(".") or self.peek("["):
            if self.peek("."):
                self.take(".")
                steps.append(_field(self._key()))
            else:
                self.take("[")
                if self.peek("]"):
                    self.take("]")
                    steps.append(_each(self._optional()))
                elif self.peek(kind="number"):
                    number = self.take(kind="number").text
                    if not re.fullmatch(r"-?\d+", number):
                        raise JqError(f"list index {number} is not an integer")
                    self.take("]")
                    steps.append(_index(int(number)))
                else:
                    key = json.loads(self.take(kind="string").text)
                    self.take("]")
                    steps.append(_field(key))
            self._optional()
        return steps

    def _key(self) -> str:
        if self.peek(kind="string"):
            return json.loads(self.take(kind="string").text)
        return self.take(kind="word").text

    def _optional(self) -> bool:
        if self.peek("?"):
            self.take("?")
            return True
        return False

    def cond(self) -> Cond:
        left = self.conj()
        while self.peek("or"):
            self.take("or")
            right = self.conj()
            left = (lambda a, b: lambda v: a(v) or b(v))(left, right)
        return left

    def conj(self) -> Cond:
        left = self.unary()
        while self.peek("and"):
            self.take("and")
            right = self.unary()
            left = (lambda a, b: lambda v: a(v) and b(v))(left, right)
        return left

    def unary(self) -> Cond:
        if self.peek("("):
            self.take("(")
            inner = self.cond()
            self.take(")")
            return self._maybe_not(inner)
        operand = self.operand()
        if self.peek(kind="op") and not self.peek("|"):
            op = self.take(kind="op").text
            other = self.operand()
            return self._maybe_not(_compare(op, operand, other))
        if self.peek("|") and self.i + 1 < len(self.toks) and \
                self.toks[self.i + 1].text in _FUNCS:
            self.take("|")
            name = self.take(kind="word").text
            self.take("(")
            arg = json.loads(self.take(kind="string").text)
            self.take(")")
            return self._maybe_not(_call(name, arg, operand))
        return self._maybe_not(lambda v: _truthy(operand(v)))

    def _maybe_not(self, cond: Cond) -> Cond:
        while self.peek("|") and self.i + 1 < len(self.toks) and \
                self.toks[self.i + 1].text == "not":
            self.take("|")
            self.take("not")
            cond = (lambda c: lambda v: not c(v))(cond)
        return cond

    def operand(self) -> Callable[[Any], Any]:
        if self.peek(kind="string"):
            value = json.loads(self.take(kind="string").text)
            return lambda _v: value
        if self.peek(kind="number"):
            value = json.loads(self.take(kind="number").text)
            return lambda _v: value
        if self.peek("true") or self.peek("false") or self.peek("null"):
            value = {"true": True, "false": False, "null": None}[self.take().text]
            return lambda _v: value
        steps = self.path()
        return lambda v: next((x for _p, x in _run(steps, (), v)), None)


def _field(name: str) -> Step:
    def step(path: Path, value: Any) -> Iterator[tuple[Path, Any]]:
        if isinstance(value, dict) and name in value:
            yield (*path, name), value[name]
    return step


def _index(index: int) -> Step:
    def step(path: Path, value: Any) -> Iterator[tuple[Path, Any]]:
        if isinstance(value, list) and -len(value) <= index < len(value):
            real = index % len(value)
            yield (*path, real), value[real]
    return step


def _each(_optional: bool) -> Step:
    def step(path: Path, value: Any) -> Iterator[tuple[Path, Any]]:
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield (*path, i), item
        elif isinstance(value, dict):
            for key, item in value.items():
                yield (*path, key), item
    return step


def _select(cond: Cond) -> Step:
    def step(path: Path, value: Any) -> Iterator[tuple[Path, Any]]:
        if cond(value):
            yield path, value
    return step


def _compare(op: str, a: Callable, b: Callable) -> Cond:
    def cond(v: Any) -> bool:
        x, y = a(v), b(v)
        if op == "==":
            return x == y
        if op == "!=":
            return x != y
        try:
            return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
        except TypeError:
            return False
    return cond


def _call(name: str, arg: str, operand: Callable) -> Cond:
    def cond(v: Any) -> bool:
        x = operand(v)
        if name == "has":
            return isinstance(x, dict) and arg in x
        if not isinstance(x, str):
            return False
        if name == "startswith":
            return x.startswith(arg)
        if name == "endswith":
            return x.endswith(arg)
        if name == "contains":
            return arg in x
        return re.search(arg, x) is not None
    return cond


def _truthy(value: Any) -> bool:
    return value is not None and value is not False


def _run(steps: list[Step], path: Path, value: Any) -> Iterator[tuple[Path, Any]]:
    current = [(path, value)]
    for step in steps:
        current = [out for p, v in current for out in step(p, v)]
    return iter(current)


@dataclass(frozen=True)
class JqPath:
    text: str
    steps: tuple[Step, ...]

    def paths(self, obj: Any) -> list[Path]:
        """The paths in obj the expression selects (as jq's `path(EXPR)` lists them)."""
        return [p for p, _ in _run(list(self.steps), (), obj)]


def compile_path(text: str) -> JqPath:
    """Raises JqError naming what is not supported, and where."""
    if len(text) > MAX_LENGTH:
        raise JqError(f"jq expression longer than {MAX_LENGTH} characters")
    return JqPath(text, tuple(_Parser(text).program()))
