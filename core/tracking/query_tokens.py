"""Tokens of the run search language: each with the 1-based column it starts at, for error messages."""

from __future__ import annotations

import re
from dataclasses import dataclass

from forgeml.errors import QuerySyntaxError

KEYWORDS = {"and", "or", "not", "between", "in", "like", "ilike", "is", "null", "order", "by", "asc", "desc", "limit"}
OPERATORS = ("==", "!=", "<>", "<=", ">=", "=", "<", ">")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT_CHARS = re.compile(r"[A-Za-z0-9_./:\-]")


@dataclass(frozen=True)
class Token:
    """One lexical token with its 1-based column."""

    kind: str  # ident, keyword, number, string, op, "(", ")", ",", eof
    value: str
    column: int


def syntax_error(text: str, column: int, message: str) -> QuerySyntaxError:
    """Build a QuerySyntaxError whose message points at a column of the query."""
    err = QuerySyntaxError(f"{message} at column {column}\n  {text}\n  {' ' * (column - 1)}^")
    err.column = column  # type: ignore[attr-defined]
    return err


def tokenize(text: str) -> list[Token]:
    """Split a query into tokens, raising QuerySyntaxError at the first character that fits none."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        col = i + 1
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(Token(ch, ch, col))
            i += 1
        elif ch in "'\"":
            value, i = _read_quoted(text, i, ch)
            tokens.append(Token("string", value, col))
        elif (m := _NUMBER.match(text, i)) and (ch.isdigit() or ch in "+-."):
            end = m.end()
            if end < n and (text[end].isalpha() or text[end] == "_"):
                raise syntax_error(text, col, f"malformed number {text[i:end + 1]!r}")
            tokens.append(Token("number", m.group(), col))
            i = end
        elif ch.isalpha() or ch in "_`":
            value, end = _read_identifier(text, i)
            if end == i:  # a letter outside names' alphabet, e.g. "Ý": refuse it rather than loop
                raise syntax_error(text, col, f"unexpected character {ch!r}; names use A-Z, 0-9, _ . / : -")
            i = end
            kind = "keyword" if "." not in value and value.lower() in KEYWORDS and ch != "`" else "ident"
            tokens.append(Token(kind, value.lower() if kind == "keyword" else value, col))
        elif op := next((o for o in OPERATORS if text.startswith(o, i)), None):
            tokens.append(Token("op", op, col))
            i += len(op)
        else:
            raise syntax_error(text, col, f"unexpected character {ch!r}")
    tokens.append(Token("eof", "", n + 1))
    return tokens


def _read_quoted(text: str, i: int, quote: str) -> tuple[str, int]:
    out, j = [], i + 1
    while j < len(text):
        if text[j] == quote:
            if j + 1 < len(text) and text[j + 1] == quote:
                out.append(quote)
                j += 2
                continue
            return "".join(out), j + 1
        out.append(text[j])
        j += 1
    label = "string" if quote != "`" else "quoted name"
    raise syntax_error(text, i + 1, f"unterminated {label} (close it with {quote})")


def _read_identifier(text: str, i: int) -> tuple[str, int]:
    parts = []
    while i < len(text):
        if text[i] == "`":
            value, i = _read_quoted(text, i, "`")
            parts.append(value)
        elif _IDENT_CHARS.match(text[i]):
            parts.append(text[i])
            i += 1
        else:
            break
    return "".join(parts), i
