"""Make pkilint's validator tree walk cheaper without changing what it finds.

pkilint walks every node of the decoded certificate and asks every validator of a container
whether it ``match``-es that node: about 100 nodes times 60 validators, some 6,500 ``match`` calls
per certificate, which is over half of a lint's time. Most of those answers depend only on the
node's path and ASN.1 type, which repeat from one certificate to the next. This module replaces
each container's walk by one that looks those answers up in a table built on first sight of a
(path, type) pair, and calls ``match`` only where the answer may depend on the node's content.

Soundness rests on what ``pkilint.document.NodeVisitor.match`` checks, in order: ``_path``,
``_path_re`` (functions of the path), ``_pdu_class`` (of the type), ``_pdu_supertype`` (of the
value's tag set and constraints) and last ``_predicate`` (of the content). A validator whose class
keeps that ``match`` is decided by the table, except for its predicate, which is still called. A
class that overrides ``match`` is trusted to the table only if its override starts by returning
False when ``super().match(node)`` is False (checked on its source, all the way up); any other
override is called on every node, as pkilint does. Results come out in pkilint's order.
``tests/ca/test_lint_dispatch.py`` compares findings with and without this on real certificates.
"""

from __future__ import annotations

import ast
import enum
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from pkilint.document import NodeVisitor, PDUNode
from pkilint.validation import ValidatorContainer

_MAX_KEYS = 20_000  # distinct (path, type) pairs kept; paths repeat, so this is rarely reached


def accelerate(container: ValidatorContainer) -> ValidatorContainer:
    """Install the table-driven walk on ``container`` and every container nested in it."""
    for validator in container.validators:
        if isinstance(validator, ValidatorContainer):
            accelerate(validator)
    walk = _IndexedWalk(container)
    container._validate_rec = walk
    return container


class _IndexedWalk:
    """``ValidatorContainer._validate_rec`` with the static part of ``match`` looked up."""

    def __init__(self, container: ValidatorContainer) -> None:
        self._validators: list[Any] = list(container.validators)
        self._uses_supertype = any(
            getattr(v, "_pdu_supertype", None) is not None for v in self._validators
        )
        self._table: dict[tuple[Any, ...], list[tuple[Any, bool]]] = {}

    def __call__(self, node: PDUNode, results: list[Any]) -> None:
        pdu = node.pdu
        key: tuple[Any, ...] = (
            (node.path, type(pdu), pdu.tagSet, pdu.subtypeSpec)
            if self._uses_supertype
            else (node.path, type(pdu))
        )
        candidates = self._table.get(key)
        if candidates is None:
            candidates = self._candidates(node)
            if len(self._table) >= _MAX_KEYS:
                self._table.clear()
            self._table[key] = candidates
        for validator, must_ask in candidates:
            if must_ask and not validator.match(node):
                continue
            result = validator.validate_wrapper(node)
            if isinstance(result, list):
                results += result
            else:
                results.append(result)
        for child in node.children.values():
            self(child, results)

    def _candidates(self, node: PDUNode) -> list[tuple[Any, bool]]:
        """Validators that may match nodes like this one, and whether to ask each."""
        candidates = []
        for validator in self._validators:
            kind = _match_kind(type(validator))
            if kind is _MatchKind.OPAQUE:
                candidates.append((validator, True))
            elif _static_match(validator, node):
                must_ask = kind is _MatchKind.GUARDED or validator._predicate is not None
                candidates.append((validator, must_ask))
        return candidates


class _MatchKind(enum.Enum):
    PLAIN = "plain"  # NodeVisitor.match itself
    GUARDED = "guarded"  # an override that first requires super().match(node)
    OPAQUE = "opaque"  # anything else: ask on every node


def _static_match(visitor: Any, node: PDUNode) -> bool:
    """NodeVisitor.match without the predicate: depends on path and type only."""
    if not isinstance(visitor, NodeVisitor):
        return True
    path = node.path
    if visitor._path is not None and visitor._path != path:
        return False
    if visitor._path_re is not None and visitor._path_re.match(path) is None:
        return False
    if visitor._pdu_class is not None and not isinstance(node.pdu, visitor._pdu_class):
        return False
    supertype = visitor._pdu_supertype
    return supertype is None or bool(supertype.isSuperTypeOf(node.pdu))


def _match_kind(cls: type) -> _MatchKind:
    kind = _KINDS.get(cls)
    if kind is None:
        kind = _KINDS[cls] = _classify_match(cls)
    return kind


_KINDS: dict[type, _MatchKind] = {}


def _classify_match(cls: type) -> _MatchKind:
    if not issubclass(cls, NodeVisitor):
        return _MatchKind.OPAQUE
    for index, klass in enumerate(cls.__mro__):
        if "match" not in vars(klass):
            continue
        if klass is NodeVisitor:
            return _MatchKind.PLAIN
        if not _starts_with_super_match(vars(klass)["match"]):
            return _MatchKind.OPAQUE
        parent = next((k for k in cls.__mro__[index + 1 :] if "match" in vars(k)), None)
        if parent is None or _match_kind(parent) is _MatchKind.OPAQUE:
            return _MatchKind.OPAQUE
        return _MatchKind.GUARDED
    return _MatchKind.OPAQUE


def _starts_with_super_match(function: Callable[..., Any]) -> bool:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return source_starts_with_super_match(source)


def source_starts_with_super_match(source: str) -> bool:
    """True for ``if not super().match(node): return False`` or ``return super().match(node)
    and ...`` as the first statement: then a False from super means a False from this."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return False
    definition = tree.body[0]
    if not isinstance(definition, ast.FunctionDef) or len(definition.args.args) != 2:
        return False
    node_arg = definition.args.args[1].arg
    body = [s for s in definition.body if not _is_docstring(s)]
    if not body:
        return False
    first = body[0]
    if isinstance(first, ast.If):
        return (
            isinstance(first.test, ast.UnaryOp)
            and isinstance(first.test.op, ast.Not)
            and _is_super_match_call(first.test.operand, node_arg)
            and len(first.body) == 1
            and isinstance(first.body[0], ast.Return)
            and isinstance(first.body[0].value, ast.Constant)
            and first.body[0].value.value is False
        )
    if isinstance(first, ast.Return) and isinstance(first.value, ast.BoolOp):
        return isinstance(first.value.op, ast.And) and _is_super_match_call(
            first.value.values[0], node_arg
        )
    return False


def _is_super_match_call(expression: ast.expr, node_arg: str) -> bool:
    return (
        isinstance(expression, ast.Call)
        and isinstance(expression.func, ast.Attribute)
        and expression.func.attr == "match"
        and isinstance(expression.func.value, ast.Call)
        and isinstance(expression.func.value.func, ast.Name)
        and expression.func.value.func.id == "super"
        and not expression.func.value.args
        and len(expression.args) == 1
        and isinstance(expression.args[0], ast.Name)
        and expression.args[0].id == node_arg
        and not expression.keywords
    )


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
