"""A light reading of the KQL in docs/queries.kql, for the tests: no KQL engine runs here, so
the tests check what a query *names* against what the exporter writes.

A query is a table name, then pipe operators (``where``, ``extend``, ``summarize``,
``project``, ``order by``/``sort by``, ``take``/``limit``; any other operator is reported, so
a new one is a conscious change to this reader). The reader follows the columns each operator
leaves (a table's own, then those ``extend`` adds, then only what ``summarize`` or
``project`` outputs) and reports:

- a name that is neither a column available at that point, a known function, nor a keyword;
- ``customDimensions`` read other than as ``customDimensions["key"]``, or with a key the
  table's telemetry does not carry;
- a metric or span name compared with ``name`` (``==``, ``in (...)``, ``startswith``) that
  the telemetry contract does not define; a ``customMetrics`` query that names no metric, or
  reads a dimension none of its metrics carries;
- a value compared with a dimension (``tostring(customDimensions["k"]) == "v"``) that the
  dimension never takes.
"""

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass, field

TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>\d+(?:\.\d+)?[a-z]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|=~|!~|[|(),\[\]=<>+\-*/.])
""", re.VERBOSE)

KEYWORDS = {"and", "or", "in", "by", "asc", "desc", "nulls", "first", "last", "true", "false",
            "startswith", "endswith", "contains", "has", "between"}
FUNCTIONS = {"tostring", "toint", "todouble", "bin", "count", "sum", "dcount", "min", "max",
             "avg", "round", "percentile", "percentilew", "isempty", "isnotempty", "coalesce",
             "arg_max", "arg_min", "iff", "not", "countif", "sumif", "ago", "now"}
ARG_AGGREGATES = {"arg_max", "arg_min"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


@dataclass(frozen=True)
class Schema:
    """What the exporter writes: each table's columns and the customDimensions keys its rows
    carry; the metrics (name -> its attributes); the span names a table's ``name`` takes
    (whole names, and prefixes ``startswith`` may use); the values a dimension takes."""

    columns: Mapping[str, Set[str]]
    dimensions: Mapping[str, Set[str]]
    metrics: Mapping[str, Set[str]]
    span_names: Mapping[str, re.Pattern[str]]
    span_prefixes: Mapping[str, Set[str]]
    values: Mapping[str, Set[str]]


def tokenize(text: str) -> list[Token]:
    """Tokens without spaces and comments; raises ValueError on a character KQL's reader
    here does not know."""
    tokens, position = [], 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"unexpected {text[position]!r} at {position}")
        kind = match.lastgroup
        assert kind is not None
        if kind not in ("space", "comment"):
            tokens.append(Token(kind, match.group()))
        position = match.end()
    return tokens


def _split(tokens: list[Token], separator: str) -> list[list[Token]]:
    """``tokens`` cut at each ``separator`` outside parentheses and brackets."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.kind == "op" and token.text in "([":
            depth += 1
        elif token.kind == "op" and token.text in ")]":
            depth -= 1
        if depth == 0 and token.text == separator and token.kind in ("op", "name"):
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _assignment(item: list[Token]) -> tuple[str | None, list[Token]]:
    if len(item) > 2 and item[0].kind == "name" and item[1].text == "=":
        return item[0].text, item[2:]
    return None, item


@dataclass
class Reading:
    """What one query names, and what is wrong with it."""

    table: str = ""
    problems: list[str] = field(default_factory=list)
    metrics: set[str] = field(default_factory=set)
    dimensions: set[str] = field(default_factory=set)


class _Reader:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.reading = Reading()
        self.source_name = True  # ``name`` is still the table's own column

    def problem(self, text: str) -> None:
        self.reading.problems.append(text)

    def read(self, text: str) -> Reading:
        head, *operators = _split(tokenize(text), "|")
        if len(head) != 1 or head[0].text not in self.schema.columns:
            self.problem(f"starts with {' '.join(t.text for t in head)!r}, not a table")
            return self.reading
        self.reading.table = table = head[0].text
        columns = set(self.schema.columns[table])
        for operator in operators:
            columns = self.operator(operator, columns)
        self.finish()
        return self.reading

    def operator(self, tokens: list[Token], columns: set[str]) -> set[str]:
        if not tokens:
            self.problem("an empty pipe")
            return columns
        verb, rest = tokens[0].text, tokens[1:]
        if verb == "where":
            self.expression(rest, columns)
            return columns
        if verb == "extend":
            for item in _split(rest, ","):
                name, expression = _assignment(item)
                self.expression(expression, columns)
                if name is None:
                    self.problem("extend without a column name")
                else:
                    columns = columns | {name}
            return columns
        if verb in ("summarize", "project"):
            self.source_name = False
            return self.outputs(verb, rest, columns)
        if verb in ("order", "sort") and rest[:1] and rest[0].text == "by":
            for item in _split(rest[1:], ","):
                if not item or item[0].text not in columns:
                    self.problem(f"{verb} by {item[0].text if item else '?'}: no such column")
                if any(t.text not in ("asc", "desc", "nulls", "first", "last")
                       for t in item[1:]):
                    self.problem(f"{verb} by: only a column and asc/desc")
            return columns
        if verb in ("take", "limit"):
            if len(rest) != 1 or rest[0].kind != "number":
                self.problem(f"{verb}: a number")
            return columns
        self.problem(f"operator {verb!r}: not one this reader knows")
        return columns

    def outputs(self, verb: str, tokens: list[Token], columns: set[str]) -> set[str]:
        """The columns ``summarize ... by ...`` or ``project ...`` leaves."""
        parts = _split(tokens, "by") if verb == "summarize" else [tokens]
        if len(parts) > 2:
            self.problem(f"{verb}: more than one by")
        result: set[str] = set()
        for index, part in enumerate(parts):
            for item in _split(part, ","):
                name, expression = _assignment(item)
                self.expression(expression, columns)
                if name is not None:
                    result.add(name)
                elif len(expression) == 1 and expression[0].kind == "name" and (
                        verb == "project" or index == 1):
                    result.add(expression[0].text)
                elif expression and expression[0].text in ARG_AGGREGATES:
                    result |= {t.text for t in expression[2:-1] if t.kind == "name"}
                else:
                    self.problem(f"{verb}: name the column of {' '.join(t.text for t in item)}")
        return result

    def expression(self, tokens: list[Token], columns: set[str]) -> None:
        for index, token in enumerate(tokens):
            if token.kind != "name":
                continue
            before = tokens[index - 1].text if index else ""
            after = tokens[index + 1].text if index + 1 < len(tokens) else ""
            if before == ".":
                self.problem(f".{token.text}: read a dimension as customDimensions[\"key\"]")
            elif token.text in KEYWORDS:
                continue
            elif after == "(":
                if token.text not in FUNCTIONS:
                    self.problem(f"{token.text}(): not a function this reader knows")
            elif token.text not in columns:
                self.problem(f"{token.text}: not a column of {self.reading.table} here")
            elif token.text == "customDimensions":
                self.dimension(tokens[index + 1:])
            elif token.text == "name" and self.source_name:
                self.names(tokens[index + 1:])

    def dimension(self, tokens: list[Token]) -> None:
        texts = [t.text for t in tokens[:3]]
        if len(tokens) < 3 or texts[0] != "[" or tokens[1].kind != "string" or texts[2] != "]":
            self.problem('customDimensions: read a key as customDimensions["key"]')
            return
        key = tokens[1].text[1:-1]
        table = self.reading.table
        if key not in self.schema.dimensions[table]:
            self.problem(f"customDimensions[{key!r}]: not written to {table}")
        self.reading.dimensions.add(key)
        rest = tokens[3:]
        while rest and rest[0].text == ")":  # tostring(customDimensions["k"]) == "v"
            rest = rest[1:]
        if len(rest) >= 2 and rest[0].text in ("==", "!=") and rest[1].kind == "string":
            value = rest[1].text[1:-1]
            if key in self.schema.values and value not in self.schema.values[key]:
                self.problem(f"{key} is never {value!r}")

    def names(self, tokens: list[Token]) -> None:
        """``name == "x"``, ``name in ("x", ...)``, ``name startswith "x"``."""
        if not tokens:
            return
        verb = tokens[0].text
        if verb == "in":
            end = next((i for i, t in enumerate(tokens) if t.text == ")"), len(tokens))
            literals = [t.text[1:-1] for t in tokens[1:end] if t.kind == "string"]
        elif verb in ("==", "startswith") and len(tokens) > 1 and tokens[1].kind == "string":
            literals = [tokens[1].text[1:-1]]
        else:
            return
        table = self.reading.table
        for literal in literals:
            if table == "customMetrics":
                if verb == "startswith" or literal not in self.schema.metrics:
                    self.problem(f"metric {literal!r}: not in the telemetry contract")
                self.reading.metrics.add(literal)
            elif table in self.schema.span_names:
                known = (literal in self.schema.span_prefixes[table] if verb == "startswith"
                         else self.schema.span_names[table].fullmatch(literal))
                if not known:
                    self.problem(f"span name {literal!r}: not one {table} holds")

    def finish(self) -> None:
        if self.reading.table != "customMetrics":
            return
        if not self.reading.metrics:
            self.problem("customMetrics: the query names no metric")
            return
        carried = set().union(*(self.schema.metrics.get(m, set()) for m in self.reading.metrics))
        for key in sorted(self.reading.dimensions - carried):
            self.problem(f"{key}: none of {sorted(self.reading.metrics)} carries it")


def read(text: str, schema: Schema) -> Reading:
    """The query's table, the metrics and dimensions it names, and its problems."""
    return _Reader(schema).read(text)
