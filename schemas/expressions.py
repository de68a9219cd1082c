"""The `filter:` expression language: a small, safe subset of Python expression syntax.

`len(text) > 20 and label in ['bug', 'praise'] and not is_null(user)`

Nothing here is ever evaluated by Python (no eval/exec): the text is parsed with
`ast` in 'eval' mode, every node is checked against a whitelist, and the tree is
translated into a pyarrow.compute Expression that Arrow evaluates on the table.

Allowed: column names, constants (text, numbers, True/False, None), comparisons
(== != < <= > >=, chained as in Python; `in`/`not in` a list of constants),
`and`/`or`/`not`, `+ - * /` on numbers, and the functions in FUNCTIONS.
`x == None` means "x is null". `/` is true (float) division. contains/startswith/
endswith search for plain text (never a regular expression: no pattern to blow up).

Two layers, so the spec checker can use the first without data or pyarrow:
- `check_expression(text, columns=None)` -> problems as strings (pure);
- `referenced_columns(text)` -> the column names it uses (pure);
- `compile_filter(text, schema)` / `filter_table(table, text)` (pyarrow).
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 5000  # characters; filters are one-liners, this bounds parse time
MAX_DEPTH = 64  # nesting levels; keeps the recursive checker and builder far from Python's limit

NUMBER, STRING, BOOL, NULL, ANY = "number", "string", "bool", "None", "any"
_BASIC = {NUMBER, STRING, BOOL, NULL, ANY}

# name: (argument kinds, result kind); "literal" = a text constant such as 'abc'.
FUNCTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "len": ((STRING,), NUMBER),
    "lower": ((STRING,), STRING),
    "upper": ((STRING,), STRING),
    "strip": ((STRING,), STRING),
    "startswith": ((STRING, "literal"), BOOL),
    "endswith": ((STRING, "literal"), BOOL),
    "contains": ((STRING, "literal"), BOOL),
    "is_null": ((ANY,), BOOL),
}

_ORDER = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_EQUALITY = {ast.Eq: "==", ast.NotEq: "!="}
_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}

# Why a construct is refused, in the user's terms.
_REFUSED = {
    ast.Attribute: "attribute access (`.`) is not allowed; use the functions: {functions}",
    ast.Subscript: "indexing and slicing (`[...]`) are not allowed",
    ast.Lambda: "`lambda` is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.NamedExpr: "assignment (`:=`) is not allowed",
    ast.IfExp: "conditional expressions (`a if c else b`) are not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Set: "set literals are not allowed",
    ast.JoinedStr: "f-strings are not allowed; use plain text constants",
    ast.Await: "`await` is not allowed",
    ast.Yield: "`yield` is not allowed",
    ast.YieldFrom: "`yield` is not allowed",
    ast.Starred: "`*` unpacking is not allowed",
    ast.Slice: "slices are not allowed",
}


@dataclass(frozen=True)
class Problem:
    """Why an expression is refused, and where."""

    message: str
    line: int  # 1-based
    column: int  # 1-based, in characters
    piece: str  # the offending text

    def describe(self, multiline: bool) -> str:
        where = f"line {self.line}, column {self.column}" if multiline else f"column {self.column}"
        piece = self.piece if len(self.piece) <= 40 else self.piece[:37] + "..."
        return f"`{piece}` at {where}: {self.message}" if piece else f"at {where}: {self.message}"


class ExpressionError(ValueError):
    """A filter expression that is not allowed or does not fit the data; says what and where."""

    def __init__(self, text: str, problems: list[Problem]):
        self.text, self.problems = text, problems
        super().__init__("; ".join(p.describe(_multiline(text)) for p in problems))


def _multiline(text: Any) -> bool:
    return isinstance(text, str) and "\n" in text


# --- pure layer: parse and check -------------------------------------------------

class _Source:
    """Maps AST positions (UTF-8 byte offsets) back to characters of the original text."""

    def __init__(self, text: str):
        self.text = text
        # One logical line: newlines become spaces (same length), so YAML block
        # scalars parse, and an absolute offset still points into the original text.
        self.flat = text.replace("\r", " ").replace("\n", " ")
        self._encoded = self.flat.encode()

    def position(self, offset: int) -> tuple[int, int]:
        before = self.text[:offset]
        return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1

    def char_offset(self, byte_offset: int) -> int:
        return len(self._encoded[:byte_offset].decode("utf-8", errors="ignore"))

    def problem(self, node: ast.AST | None, message: str) -> Problem:
        if node is None or not hasattr(node, "col_offset"):
            return Problem(message, 1, 1, "")
        start = self.char_offset(node.col_offset)
        end = self.char_offset(node.end_col_offset) if node.end_col_offset is not None else start
        return Problem(message, *self.position(start), self.flat[start:end])


def parse(text: str) -> tuple[ast.Expression | None, list[Problem], _Source]:
    """The syntax tree, or the problems that stop parsing (syntax, size, depth)."""
    if not isinstance(text, str):
        return None, [Problem("the expression must be text", 1, 1, "")], _Source("")
    source = _Source(text)
    stop = _unparsable(text)
    if stop:
        return None, [Problem(stop, 1, 1, "")], source
    try:
        with warnings.catch_warnings():  # e.g. "'str' object is not callable": we report our own problems
            warnings.simplefilter("ignore")
            tree = ast.parse(source.flat, mode="eval")
    except SyntaxError as error:
        offset = max((error.offset or 1) - 1, 0)
        token = re.match(r"\w+|\S", source.flat[offset:])
        message = "invalid syntax" if error.msg == "invalid syntax" else f"invalid syntax: {error.msg}"
        line, column = source.position(min(offset, len(text)))
        return None, [Problem(message, line, column, token.group(0) if token else "")], source
    except (RecursionError, MemoryError, ValueError):
        return None, [Problem("the expression is too deeply nested or too large", 1, 1, "")], source
    too_deep = _too_deep(tree)
    if too_deep is not None:
        return None, [source.problem(too_deep, f"the expression nests deeper than {MAX_DEPTH} levels")], source
    return tree, [], source


def _unparsable(text: str) -> str | None:
    if not text.strip():
        return "the expression is empty"
    if len(text) > MAX_LENGTH:
        return f"the expression is longer than {MAX_LENGTH} characters"
    if "\x00" in text:
        return "the expression contains a NUL character"
    return None


def _too_deep(tree: ast.AST) -> ast.AST | None:
    """The first node nested deeper than MAX_DEPTH (its nearest positioned ancestor), or None."""
    stack = [(tree, 0, tree)]  # iterative: a deep tree must not exhaust the Python stack here
    while stack:
        node, depth, located = stack.pop()
        located = node if hasattr(node, "col_offset") else located
        if depth > MAX_DEPTH:
            return located
        stack.extend((child, depth + 1, located) for child in ast.iter_child_nodes(node))
    return None


def kind_of_type(arrow_type: Any) -> str:
    """The expression kind of an Arrow type (its string form is enough: no pyarrow needed)."""
    name = str(arrow_type)
    if name.startswith("dictionary<values="):
        name = name[len("dictionary<values="):].split(",", 1)[0]
    if name in ("string", "large_string", "string_view", "utf8", "large_utf8"):
        return STRING
    if name == "bool":
        return BOOL
    if name == "null":
        return ANY  # an all-null column: takes the kind its use asks for (see _Checker.casts)
    if name.startswith(("int", "uint", "float", "double", "halffloat", "decimal")):
        return NUMBER
    return name  # timestamps, dates, lists...: compared only with themselves or text constants


class _Checker:
    """Walks a parsed expression: whitelist, column names, kinds. Collects every problem."""

    def __init__(self, source: _Source, columns: dict[str, str] | None):
        self.source, self.columns = source, columns
        self.problems: list[Problem] = []
        self.casts: dict[int, str] = {}  # id(Name node) of an all-null column -> the kind it is used as

    def fail(self, node: ast.AST, message: str) -> str:
        self.problems.append(self.source.problem(node, message))
        return ANY  # keep checking the rest without cascading errors

    def visit(self, node: ast.AST, expect: str | None = None) -> str:
        handler = getattr(self, f"visit_{type(node).__name__}", None)
        if handler is None:
            reason = _REFUSED.get(type(node), "`{construct}` is not allowed in a filter")
            return self.fail(node, reason.format(functions=_function_list(), construct=type(node).__name__))
        kind = handler(node)
        if expect and kind == ANY and self._null_column(node):
            self.casts[id(node)] = expect
        return kind

    def _null_column(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and self.columns is not None and self.columns.get(node.id) == "null"

    def _column_kind(self, name: str) -> str:
        return ANY if self.columns is None else kind_of_type(self.columns[name])

    # leaves
    def visit_Constant(self, node: ast.Constant) -> str:
        value = node.value
        if value is None:
            return NULL
        if isinstance(value, bool):
            return BOOL
        if isinstance(value, int):
            return NUMBER if -2**63 <= value < 2**63 else self.fail(node, "integer does not fit in 64 bits")
        if isinstance(value, float):
            return NUMBER
        if isinstance(value, str):
            return STRING
        return self.fail(node, "only text, numbers, True/False and None are allowed as constants")

    def visit_Name(self, node: ast.Name) -> str:
        if node.id.startswith("__"):
            return self.fail(node, "names starting with `__` are not allowed")
        if node.id in FUNCTIONS and (self.columns is None or node.id not in self.columns):
            return self.fail(node, f"`{node.id}` is a function: call it, e.g. `{node.id}(text)`")
        if self.columns is not None and node.id not in self.columns:
            return self.fail(node, f"no column `{node.id}`; columns: {', '.join(self.columns) or '(none)'}")
        return self._column_kind(node.id)

    # operators
    def visit_BoolOp(self, node: ast.BoolOp) -> str:
        for value in node.values:
            self._expect(value, BOOL, "`and`/`or` need true/false operands")
        return BOOL

    def visit_UnaryOp(self, node: ast.UnaryOp) -> str:
        if isinstance(node.op, ast.Not):
            self._expect(node.operand, BOOL, "`not` needs a true/false operand")
            return BOOL
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            self._expect(node.operand, NUMBER, "`-`/`+` need a number")
            return NUMBER
        return self.fail(node, "operator `~` is not allowed; use `not`")

    def visit_BinOp(self, node: ast.BinOp) -> str:
        symbol = _ARITHMETIC.get(type(node.op))
        if symbol is None:
            return self.fail(node, "only the arithmetic operators + - * / are allowed")
        self._expect(node.left, NUMBER, f"`{symbol}` needs numbers")
        self._expect(node.right, NUMBER, f"`{symbol}` needs numbers")
        return NUMBER

    def visit_Compare(self, node: ast.Compare) -> str:
        operands = [node.left, *node.comparators]
        # A list is an operand only right after `in`, and last (`x in [1] == y` would compare the
        # list itself); anywhere else visit() refuses it.
        last = len(operands) - 1
        kinds = [ANY if index == last and isinstance(operand, (ast.List, ast.Tuple))
                 and isinstance(node.ops[index - 1], (ast.In, ast.NotIn)) else self.visit(operand)
                 for index, operand in enumerate(operands)]
        compared = list(kinds)  # plus the kinds of `in` lists
        for index, op in enumerate(node.ops):
            left, right = operands[index], operands[index + 1]
            if isinstance(op, (ast.In, ast.NotIn)):
                compared.append(self._membership(left, kinds[index], right))
            elif isinstance(op, (ast.Is, ast.IsNot)):
                self.fail(node, "`is` is not allowed; use `== None`, `!= None` or is_null(column)")
            else:
                self._comparison(op, left, kinds[index], right, kinds[index + 1])
        # Everything a chain compares has one kind; an all-null column in it takes that kind.
        concrete = next((kind for kind in compared if kind in (NUMBER, STRING, BOOL)), None)
        for operand in operands:
            if concrete and self._null_column(operand):
                self.casts[id(operand)] = concrete
        return BOOL

    def _comparison(self, op: ast.cmpop, left: ast.AST, left_kind: str, right: ast.AST, right_kind: str) -> None:
        symbol = {**_ORDER, **_EQUALITY}[type(op)]
        if NULL in (left_kind, right_kind):
            if type(op) not in _EQUALITY:
                self.fail(right if right_kind == NULL else left, f"`{symbol} None` is not meaningful; use `== None`")
        elif not _comparable(left_kind, right_kind, left, right):
            self.fail(right, f"cannot compare {left_kind} with {right_kind}")

    def _membership(self, left: ast.AST, left_kind: str, right: ast.AST) -> str:
        """Checks `left in right`; the kind of the listed values (ANY when unknown)."""
        if not isinstance(right, (ast.List, ast.Tuple)):
            self.fail(right, "`in` needs a list of constants, e.g. `label in ['a', 'b']`; "
                             "for text search use contains(column, 'x')")
            return ANY
        if not right.elts:
            self.fail(right, "`in` needs at least one value")
            return ANY
        kinds = set()
        for element in right.elts:
            if _literal(element) is _NOT_LITERAL:
                self.fail(element, "the values after `in` must be constants")
                continue
            kind = self.visit(element)
            if kind != NULL:
                kinds.add(kind)
                if not _comparable(left_kind, kind, left, element):
                    self.fail(element, f"cannot compare {left_kind} with {kind}")
        if len(kinds) > 1:
            self.fail(right, f"the values after `in` mix kinds: {', '.join(sorted(kinds))}")
        return next(iter(kinds)) if len(kinds) == 1 else ANY

    def visit_Call(self, node: ast.Call) -> str:
        if not isinstance(node.func, ast.Name):
            if type(node.func) in _REFUSED:  # `x.f()`, `x[0]()`: refuse the construct itself
                return self.visit(node.func)
            return self.fail(node.func, f"only these functions can be called: {_function_list()}")
        name = node.func.id
        if name not in FUNCTIONS:
            return self.fail(node.func, f"unknown function `{name}`; functions: {_function_list()}")
        if node.keywords:
            return self.fail(node.keywords[0], f"`{name}` takes no keyword arguments")
        params, result = FUNCTIONS[name]
        if len(node.args) != len(params) or any(isinstance(a, ast.Starred) for a in node.args):
            shape = ", ".join("'text'" if p == "literal" else "column" for p in params)
            return self.fail(node, f"`{name}` takes {len(params)} argument(s): {name}({shape})")
        for arg, param in zip(node.args, params):
            if param == "literal":
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    self.fail(arg, f"the second argument of `{name}` must be a text constant such as 'abc'")
            elif param != ANY:
                self._expect(arg, param, f"`{name}` needs text")
            else:
                self.visit(arg)
        return result

    def visit_List(self, node: ast.List) -> str:
        return self.fail(node, "a list is only allowed after `in`")

    visit_Tuple = visit_List

    def _expect(self, node: ast.AST, kind: str, message: str) -> None:
        got = self.visit(node, expect=kind)
        if got not in (kind, ANY):
            self.fail(node, f"{message}, got {got}")


def _comparable(a: str, b: str, a_node: ast.AST, b_node: ast.AST) -> bool:
    if a == b or ANY in (a, b):
        return True
    # Dates and timestamps compare with text constants ('2024-01-31'), cast to the column's type.
    if a not in _BASIC and b == STRING:
        return isinstance(b_node, ast.Constant)
    if b not in _BASIC and a == STRING:
        return isinstance(a_node, ast.Constant)
    return False


_NOT_LITERAL = object()


def _literal(node: ast.AST) -> Any:
    """The value of a constant (including `-3`), or _NOT_LITERAL."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    return _NOT_LITERAL


def _function_list() -> str:
    return ", ".join(f"{name}()" for name in FUNCTIONS)


def _check(text: str, columns: dict[str, str] | None) -> tuple[ast.Expression | None, _Checker | None, list[Problem]]:
    tree, problems, source = parse(text)
    if tree is None:
        return None, None, problems
    checker = _Checker(source, columns)
    kind = checker.visit(tree.body, expect=BOOL)
    if not checker.problems and kind not in (BOOL, ANY):
        what = {NUMBER: "a number", STRING: "text"}.get(kind, kind)
        checker.fail(tree.body, f"a filter must be a condition (true/false); this is {what}")
    return tree, checker, checker.problems


def check_expression(text: str, columns: dict[str, str] | None = None) -> list[str]:
    """Every problem with a filter expression, as messages with positions; [] when it is fine.

    `columns` (name -> Arrow type name) adds column and type checks; without it only
    the language itself is checked. Pure: no data, no pyarrow.
    """
    _, _, problems = _check(text, columns)
    return [p.describe(_multiline(text)) for p in problems]


def referenced_columns(text: str) -> list[str]:
    """The column names an expression uses, in order; ExpressionError if the language refuses it."""
    tree, _, problems = _check(text, None)
    if problems:
        raise ExpressionError(text, problems)
    assert tree is not None
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called]
    return list(dict.fromkeys(n.id for n in sorted(names, key=lambda n: n.col_offset)))


# --- pyarrow layer -----------------------------------------------------------------

def compile_filter(text: str, schema: Any) -> Any:
    """A pyarrow.compute Expression for `text` over a table with `schema`; ExpressionError if not allowed."""
    columns = {field.name: str(field.type) for field in schema}
    tree, checker, problems = _check(text, columns)
    if problems:
        raise ExpressionError(text, problems)
    assert tree is not None and checker is not None
    return _Builder(checker, schema).build(tree.body)


def filter_table(table: Any, text: str) -> Any:
    """The rows of `table` for which `text` is true (null counts as false).

    Errors Arrow raises while evaluating (an integer overflow, say) come back as
    ExpressionError, so a bad filter is always a ValueError.
    """
    import pyarrow as pa

    expression = compile_filter(text, table.schema)
    try:
        return table.filter(expression)
    except (pa.ArrowException, ArithmeticError) as error:
        raise ExpressionError(text, [Problem(f"cannot be evaluated on this data: {error}", 1, 1, "")]) from None


class _Builder:
    """Translates a checked tree into a pyarrow.compute Expression."""

    def __init__(self, checker: _Checker, schema: Any):
        import pyarrow as pa
        import pyarrow.compute as pc

        self.pa, self.pc = pa, pc
        self.checker, self.schema = checker, schema
        self.types = {NUMBER: pa.float64(), STRING: pa.string(), BOOL: pa.bool_()}

    def fail(self, node: ast.AST, message: str) -> ExpressionError:
        return ExpressionError(self.checker.source.text, [self.checker.source.problem(node, message)])

    def build(self, node: ast.AST) -> Any:
        return getattr(self, f"build_{type(node).__name__}")(node)

    def build_Constant(self, node: ast.Constant) -> Any:
        return self.pc.scalar(node.value)

    def build_Name(self, node: ast.Name) -> Any:
        field = self.pc.field(node.id)
        cast = self.checker.casts.get(id(node))
        if cast is None and self.pa.types.is_null(self.schema.field(node.id).type):
            cast = STRING  # an all-null column nothing gave a kind to (`empty == empty`): any typed null will do
        return field.cast(self.types[cast]) if cast else field

    def build_BoolOp(self, node: ast.BoolOp) -> Any:
        combine = self.pc.and_kleene if isinstance(node.op, ast.And) else self.pc.or_kleene
        result = self.build(node.values[0])
        for value in node.values[1:]:
            result = combine(result, self.build(value))
        return result

    def build_UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self.build(node.operand)
        if isinstance(node.op, ast.Not):
            return self.pc.invert(operand)
        return self.pc.negate_checked(operand) if isinstance(node.op, ast.USub) else operand

    def build_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.build(node.left), self.build(node.right)
        if isinstance(node.op, ast.Div):  # true division, as in Python; x/0 gives inf rather than failing the run
            float64 = self.pa.float64()
            return self.pc.divide(left.cast(float64), right.cast(float64))
        function = {ast.Add: self.pc.add_checked, ast.Sub: self.pc.subtract_checked,
                    ast.Mult: self.pc.multiply_checked}[type(node.op)]
        return function(left, right)  # checked: an overflow is an error, not a silently wrapped number

    def build_Compare(self, node: ast.Compare) -> Any:
        parts, left = [], node.left
        for op, right in zip(node.ops, node.comparators):
            parts.append(self._pair(op, left, right))
            left = right
        result = parts[0]
        for part in parts[1:]:
            result = self.pc.and_kleene(result, part)
        return result

    def _pair(self, op: ast.cmpop, left: ast.AST, right: ast.AST) -> Any:
        pc = self.pc
        if isinstance(op, (ast.In, ast.NotIn)):
            if all(_literal(e) is None for e in right.elts):  # type: ignore[attr-defined]
                return pc.is_null(self.build(left)) if isinstance(op, ast.In) else pc.is_valid(self.build(left))
            found = pc.is_in(self.build(left), value_set=self._value_set(left, right))
            return pc.invert(found) if isinstance(op, ast.NotIn) else found
        for this, other in ((left, right), (right, left)):
            if isinstance(other, ast.Constant) and other.value is None:
                return pc.is_null(self.build(this)) if isinstance(op, ast.Eq) else pc.is_valid(self.build(this))
        a, b = self._operand(left, right), self._operand(right, left)
        function = {ast.Eq: pc.equal, ast.NotEq: pc.not_equal, ast.Lt: pc.less, ast.LtE: pc.less_equal,
                    ast.Gt: pc.greater, ast.GtE: pc.greater_equal}[type(op)]
        return function(a, b)

    def _column_type(self, node: ast.AST) -> Any:
        """The Arrow type of a column of a kind other than number/text/bool (a date, say), else None."""
        if isinstance(node, ast.Name) and kind_of_type(self.schema.field(node.id).type) not in _BASIC:
            return self.schema.field(node.id).type
        return None

    def _operand(self, node: ast.AST, other: ast.AST) -> Any:
        target = self._column_type(other)
        if target is not None and isinstance(node, ast.Constant) and isinstance(node.value, str):
            return self.pc.scalar(self._cast_constant(node, node.value, target))
        return self.build(node)

    def _cast_constant(self, node: ast.AST, value: Any, target: Any) -> Any:
        try:
            return self.pa.scalar(value).cast(target)
        except (self.pa.ArrowException, ValueError, TypeError):
            raise self.fail(node, f"`{value}` is not a valid {target}") from None

    def _value_set(self, left: ast.AST, values: ast.List | ast.Tuple) -> Any:
        target = self._column_type(left)
        if target is not None:
            return self.pa.array([self._cast_constant(e, _literal(e), target) for e in values.elts], type=target)
        return self.pa.array([_literal(e) for e in values.elts])  # is_in casts the set to the column's type

    def build_Call(self, node: ast.Call) -> Any:
        pc = self.pc
        args = [self.build(a) for a in node.args]
        name = node.func.id  # type: ignore[attr-defined]
        if name in ("startswith", "endswith", "contains"):
            function = {"startswith": pc.starts_with, "endswith": pc.ends_with, "contains": pc.match_substring}[name]
            return function(args[0], pattern=node.args[1].value)  # type: ignore[attr-defined]
        return {"len": pc.utf8_length, "lower": pc.utf8_lower, "upper": pc.utf8_upper,
                "strip": pc.utf8_trim_whitespace, "is_null": pc.is_null}[name](args[0])
