"""The run search language: tokens, a recursive-descent parser, and the AST it builds.

Grammar (keywords are case-insensitive)::

    query      := [expr] [ORDER BY order (',' order)*] [LIMIT integer]
    expr       := term (OR term)*
    term       := factor (AND factor)*
    factor     := NOT factor | '(' expr ')' | predicate
    predicate  := field op value
                | field [NOT] BETWEEN value AND value
                | field [NOT] IN '(' value (',' value)* ')'
                | field [NOT] LIKE string
                | field IS [NOT] NULL
    order      := field [ASC | DESC]
    field      := attribute | attributes.NAME | params.KEY | metrics.KEY | tags.KEY
    op         := '=' | '==' | '!=' | '<>' | '<' | '<=' | '>' | '>='
    value      := number | 'single' or "double" quoted string (a quote is doubled to escape it)

Attributes: id, name, experiment, status, start_time, end_time, duration, parent_id, job_id.
Keys with spaces or keywords are quoted with backticks: ``metrics.`val loss` < 1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from forgeml.errors import QuerySyntaxError, did_you_mean
from forgeml.tracking.query_tokens import Token, syntax_error, tokenize
from forgeml.tracking.records import STATUSES

ATTRIBUTES = {
    "id": "text", "run_id": "text", "name": "text", "experiment": "text", "status": "status",
    "start_time": "time", "end_time": "time", "duration": "number", "parent_id": "text", "job_id": "text",
}
PREFIXES = {
    "attributes": "attr", "attribute": "attr", "attr": "attr", "run": "attr",
    "params": "params", "param": "params", "metrics": "metrics", "metric": "metrics", "tags": "tags", "tag": "tags",
}


# ------------------------------------------------------------------ AST
@dataclass(frozen=True)
class Field:
    """A searchable column: kind is attr, params, metrics or tags."""

    kind: str
    key: str
    column: int


@dataclass(frozen=True)
class Literal:
    """A value in a query: a float or a str, with its source text and column."""

    value: float | str
    text: str
    column: int

    @property
    def is_number(self) -> bool:
        """Return whether the literal was written as a number."""
        return isinstance(self.value, float)


@dataclass(frozen=True)
class Compare:
    """field op value."""

    field: Field
    op: str
    value: Literal


@dataclass(frozen=True)
class Between:
    """field [not] between low and high (inclusive)."""

    field: Field
    low: Literal
    high: Literal
    negated: bool = False


@dataclass(frozen=True)
class In:
    """field [not] in (values)."""

    field: Field
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class Like:
    """field [not] like pattern (% and _ wildcards, case-insensitive)."""

    field: Field
    pattern: Literal
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    """field is [not] null: whether the run lacks (or has) that param, metric, tag or attribute."""

    field: Field
    negated: bool = False


@dataclass(frozen=True)
class And:
    """All of the items hold."""

    items: tuple[Any, ...]


@dataclass(frozen=True)
class Or:
    """Any of the items holds."""

    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    """The item does not hold."""

    item: Any


@dataclass(frozen=True)
class OrderItem:
    """One ORDER BY key."""

    field: Field
    descending: bool = False


@dataclass
class Query:
    """A parsed query: an optional filter, sort keys and a limit."""

    where: Any = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None


# ------------------------------------------------------------------ parser
MAX_NESTING = 64  # deeper nesting is no real query, and would exhaust Python's recursion limit


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def at_keyword(self, *words: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.value in words

    def error(self, message: str, tok: Token | None = None) -> QuerySyntaxError:
        tok = tok or self.tok
        found = "the end of the query" if tok.kind == "eof" else repr(tok.value)
        return syntax_error(self.text, tok.column, f"{message}, found {found}")

    def expect_keyword(self, word: str) -> None:
        if not self.at_keyword(word):
            raise self.error(f"expected {word.upper()}")
        self.advance()

    def expect(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(f"expected {what}")
        return self.advance()

    # ---------------------------------------------------------- grammar
    def query(self) -> Query:
        q = Query()
        if self.tok.kind != "eof" and not self.at_keyword("order", "limit"):
            q.where = self.expr()
        if self.at_keyword("order"):
            self.advance()
            self.expect_keyword("by")
            q.order_by.append(self.order_item())
            while self.tok.kind == ",":
                self.advance()
                q.order_by.append(self.order_item())
        if self.at_keyword("limit"):
            self.advance()
            tok = self.tok
            if tok.kind != "number" or not re.fullmatch(r"\+?\d+", tok.value) or int(tok.value) < 1:
                raise self.error("expected a positive whole number after LIMIT")
            self.advance()
            q.limit = int(tok.value)
        if self.tok.kind != "eof":
            hint = "AND, OR, ORDER BY or LIMIT" if q.where is not None else "a condition"
            raise self.error(f"expected {hint}")
        return q

    def order_item(self) -> OrderItem:
        f = self.field()
        descending = False
        if self.at_keyword("asc", "desc"):
            descending = self.advance().value == "desc"
        return OrderItem(f, descending)

    def expr(self) -> Any:
        items = [self.term()]
        while self.at_keyword("or"):
            self.advance()
            items.append(self.term())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def term(self) -> Any:
        items = [self.factor()]
        while self.at_keyword("and"):
            self.advance()
            items.append(self.factor())
        return items[0] if len(items) == 1 else And(tuple(items))

    def factor(self) -> Any:
        if self.at_keyword("not") or self.tok.kind == "(":
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise self.error(f"the query nests NOT and parentheses more than {MAX_NESTING} deep")
            try:
                if self.at_keyword("not"):
                    self.advance()
                    return Not(self.factor())
                self.advance()
                inner = self.expr()
                self.expect(")", "')' to close the parenthesis")
                return inner
            finally:
                self.depth -= 1
        return self.predicate()

    def field(self) -> Field:
        tok = self.tok
        if tok.kind != "ident":
            raise self.error("expected a field such as params.lr, metrics.loss, tags.team or status")
        self.advance()
        prefix, dot, key = tok.value.partition(".")
        if not dot:
            if tok.value not in ATTRIBUTES:
                suggestion = did_you_mean(tok.value, [*ATTRIBUTES, "params.", "metrics.", "tags."])
                raise syntax_error(self.text, tok.column, f"unknown field {tok.value!r}{suggestion}; use an attribute "
                                   f"({', '.join(sorted(ATTRIBUTES))}) or params.KEY, metrics.KEY, tags.KEY")
            return Field("attr", tok.value, tok.column)
        kind = PREFIXES.get(prefix.lower())
        if kind is None:
            raise syntax_error(self.text, tok.column, f"unknown field prefix {prefix!r}"
                               f"{did_you_mean(prefix, ['params', 'metrics', 'tags', 'attributes'])}; "
                               f"use params., metrics., tags. or attributes.")
        if not key:
            raise syntax_error(self.text, tok.column, f"missing key after {prefix + '.'!r}")
        if kind == "attr" and key not in ATTRIBUTES:
            raise syntax_error(self.text, tok.column, f"unknown attribute {key!r}{did_you_mean(key, ATTRIBUTES)}")
        return Field(kind, key, tok.column)

    def literal(self, f: Field) -> Literal:
        tok = self.tok
        if tok.kind == "number":
            self.advance()
            return self.check(f, Literal(float(tok.value), tok.value, tok.column))
        if tok.kind == "string":
            self.advance()
            return self.check(f, Literal(tok.value, tok.value, tok.column))
        raise self.error("expected a value (a number or a quoted string)")

    def check(self, f: Field, lit: Literal) -> Literal:
        """Type-check a literal against its field and normalise attribute values."""
        kind = "number" if f.kind == "metrics" else ATTRIBUTES.get(f.key, "text") if f.kind == "attr" else "any"
        if kind == "number" and not lit.is_number:
            raise syntax_error(self.text, lit.column, f"{_label(f)} compares with numbers, not {lit.text!r}")
        if kind == "time" and not lit.is_number:
            try:
                when = datetime.fromisoformat(str(lit.value))
            except ValueError:
                raise syntax_error(self.text, lit.column, f"{_label(f)} takes seconds since the epoch or an ISO "
                                   f"date such as '2026-01-31' or '2026-01-31T12:00', not {lit.text!r}") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return Literal(when.timestamp(), lit.text, lit.column)
        if kind == "status":
            status = str(lit.value).upper()
            if status not in STATUSES:
                raise syntax_error(self.text, lit.column, f"unknown status {lit.text!r}"
                                   f"{did_you_mean(status, STATUSES)}; statuses: {', '.join(STATUSES)}")
            return Literal(status, lit.text, lit.column)
        if kind == "text" and lit.is_number:
            return Literal(lit.text, lit.text, lit.column)
        return lit

    def predicate(self) -> Any:
        f = self.field()
        tok = self.tok
        if tok.kind == "op":
            self.advance()
            op = {"==": "=", "<>": "!="}.get(tok.value, tok.value)
            return Compare(f, op, self.literal(f))
        negated = False
        if self.at_keyword("is"):
            self.advance()
            if self.at_keyword("not"):
                self.advance()
                negated = True
            self.expect_keyword("null")
            return IsNull(f, negated)
        if self.at_keyword("not"):
            self.advance()
            negated = True
            if not self.at_keyword("between", "in", "like", "ilike"):
                raise self.error("expected BETWEEN, IN or LIKE after NOT")
        if self.at_keyword("between"):
            self.advance()
            low = self.literal(f)
            self.expect_keyword("and")
            high = self.literal(f)
            if low.is_number != high.is_number:
                raise syntax_error(self.text, high.column, "BETWEEN needs two numbers or two strings")
            return Between(f, low, high, negated)
        if self.at_keyword("in"):
            self.advance()
            self.expect("(", "'(' after IN")
            values = [self.literal(f)]
            while self.tok.kind == ",":
                self.advance()
                values.append(self.literal(f))
            self.expect(")", "',' or ')' in the IN list")
            return In(f, tuple(values), negated)
        if self.at_keyword("like", "ilike"):
            self.advance()
            if f.kind == "metrics" or ATTRIBUTES.get(f.key) in {"number", "time"} and f.kind == "attr":
                raise syntax_error(self.text, tok.column, f"LIKE matches text; {_label(f)} is a number")
            pattern = self.tok
            if pattern.kind != "string":
                raise self.error("expected a quoted pattern after LIKE")
            self.advance()
            return Like(f, Literal(pattern.value, pattern.value, pattern.column), negated)
        raise self.error(f"expected an operator (=, !=, <, <=, >, >=, BETWEEN, IN, LIKE, IS) after {_label(f)}")


def _label(f: Field) -> str:
    return f.key if f.kind == "attr" else f"{f.kind}.{f.key}"


def parse_query(text: str) -> Query:
    """Parse a search query into its AST; raise QuerySyntaxError pointing at the bad token."""
    if not isinstance(text, str):
        raise QuerySyntaxError(f"a query is a string, not {type(text).__name__}")
    return _Parser(text).query()
