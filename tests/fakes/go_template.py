"""A parser for Go's ``text/template`` syntax, so the fake Ollama accepts and refuses templates as Ollama does.

Ollama parses a model's TEMPLATE with Go's ``text/template`` when the model is created and refuses it with Go's
parse error (``template: :1: unexpected EOF``). Counting braces is not that: it refuses ``{{ "{{" }}`` (how
:mod:`dagnostics_provider.deploy.modelfile` writes a literal ``{{``) and accepts an ``{{ if }}`` never ended.

This follows Go's ``text/template/parse`` (lex.go, parse.go) closely enough to accept every template Ollama ships
and DAGnostics writes, and to refuse with Go's messages what Go refuses: actions ``{{ ... }}`` with ``{{-``/``-}}``
trim markers and ``{{/* comments */}}``; strings, raw strings, characters and numbers inside actions; pipelines
with ``|``, parentheses, ``$x :=`` declarations and ``$x =`` assignments; ``if``/``else if``/``range``/``with``/
``else with``/``end``, ``break``/``continue`` (inside ``range`` only), ``define``/``template``/``block``; unknown
functions, undefined variables and unclosed actions. It builds no tree and executes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# Go's builtins (text/template/funcs.go); a server adds its own (Ollama: json, currentDate...).
BUILTIN_FUNCTIONS = frozenset(
    {
        "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf", "println",
        "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
    }
)  # fmt: skip
KEYWORDS = frozenset({"block", "break", "continue", "define", "else", "end", "if", "nil", "range", "template", "with"})
_SPACE = " \t\r\n"
_LEFT, _RIGHT = "{{", "}}"
_OPERAND_STARTS = frozenset(
    {"bool", "char_constant", "complex", "dot", "field", "identifier", "number", "nil", "raw", "string", "variable"}
    | {"lparen"}
)
_ESCAPE = r"x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[0-7]{3}"  # Go's escapes beyond the one-letter ones
_STRING_ESCAPE = re.compile(rf'\\(?:[abfnrtv\\"]|{_ESCAPE})')
_CHAR_CONSTANT = re.compile(rf"'(?:[^'\\\n]|\\(?:[abfnrtv\\']|{_ESCAPE}))'")


class GoTemplateError(ValueError):
    """Go's parse error, worded as Go words it: ``template: <name>:<line>: <what>``."""


@dataclass(frozen=True)
class ParsedTemplate:
    """What parsing found that a server may check further (Ollama refuses ``{{ template "x" }}`` without data)."""

    definitions: tuple[str, ...] = ()
    calls_without_data: tuple[str, ...] = ()


def parse(text: str, functions: Iterable[str] = BUILTIN_FUNCTIONS, *, name: str = "") -> ParsedTemplate:
    """Parse ``text`` as Go's ``template.New(name).Funcs(...).Parse(text)`` would; raise :class:`GoTemplateError`."""
    tokens = _Lexer(text).run()
    return _Parser(tokens, frozenset(functions), name).parse()


@dataclass(frozen=True)
class _Token:
    kind: str  # "text", "left", "right", "space", "eof", "error", a keyword, or an operand kind
    value: str
    line: int

    def describe(self) -> str:
        """Go's ``item.String()``, used in "unexpected X in Y"."""
        if self.kind == "eof":
            return "EOF"
        if self.kind == "error":
            return self.value
        if self.kind in KEYWORDS or self.kind == "dot":
            return f"<{self.value}>"
        if len(self.value) > 10:
            return _go_quote(self.value[:10]) + "..."
        return _go_quote(self.value)


class _Lexer:
    """Go's state-function lexer (lex.go): each state returns the next one, None at EOF or the first error."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.start = 0
        self.paren_depth = 0
        self.tokens: list[_Token] = []

    def run(self) -> list[_Token]:
        state: Callable[[], object] | None = self._lex_text
        while state is not None:
            state = state()  # type: ignore[assignment]
        return self.tokens

    # Helpers

    def _line(self, position: int) -> int:
        return 1 + self.text.count("\n", 0, position)

    def _emit(self, kind: str) -> None:
        self.tokens.append(_Token(kind, self.text[self.start : self.pos], self._line(self.start)))
        self.start = self.pos

    def _error(self, message: str) -> None:
        self.tokens.append(_Token("error", message, self._line(self.start)))
        return None

    def _peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def _next(self) -> str | None:
        char = self._peek()
        if char is not None:
            self.pos += 1
        return char

    def _accept(self, valid: str) -> bool:
        char = self._peek()
        if char is not None and char in valid:
            self.pos += 1
            return True
        return False

    def _accept_run(self, valid: str) -> None:
        while self._accept(valid):
            pass

    def _at_right_delim(self) -> tuple[bool, bool]:
        """(at the right delimiter, with a `` -`` trim marker before it)."""
        rest = self.text[self.pos :]
        if _has_right_trim(rest) and rest[2:].startswith(_RIGHT):
            return True, True
        return rest.startswith(_RIGHT), False

    def _at_terminator(self) -> bool:
        char = self._peek()
        if char is None or char in _SPACE or char in ".,|:)(":
            return True
        return self.text.startswith(_RIGHT, self.pos)

    # States

    def _lex_text(self):
        found = self.text.find(_LEFT, self.pos)
        if found < 0:
            self.pos = len(self.text)
            if self.pos > self.start:
                self._emit("text")
            self._emit("eof")
            return None
        trim = 0
        if _has_left_trim(self.text[found + len(_LEFT) :]):
            before = self.text[self.start : found]
            trim = len(before) - len(before.rstrip(_SPACE))
        self.pos = found - trim
        if self.pos > self.start:
            self._emit("text")
        self.pos = self.start = found
        return self._lex_left_delim

    def _lex_left_delim(self):
        self.pos += len(_LEFT)
        after_marker = 2 if _has_left_trim(self.text[self.pos :]) else 0
        if self.text.startswith("/*", self.pos + after_marker):
            self.pos += after_marker
            self.start = self.pos
            return self._lex_comment
        self._emit("left")
        self.pos += after_marker
        self.start = self.pos
        self.paren_depth = 0
        return self._lex_inside_action

    def _lex_comment(self):
        self.pos += 2
        end = self.text.find("*/", self.pos)
        if end < 0:
            return self._error("unclosed comment")
        self.pos = end + 2
        delim, trim = self._at_right_delim()
        if not delim:
            return self._error("comment ends before closing delimiter")
        self.pos += (2 if trim else 0) + len(_RIGHT)
        if trim:
            self.pos += _left_trim_length(self.text[self.pos :])
        self.start = self.pos
        return self._lex_text

    def _lex_right_delim(self):
        _, trim = self._at_right_delim()
        if trim:
            self.pos += 2
            self.start = self.pos
        self.pos += len(_RIGHT)
        self._emit("right")
        if trim:
            self.pos += _left_trim_length(self.text[self.pos :])
            self.start = self.pos
        return self._lex_text

    def _lex_inside_action(self):
        delim, _ = self._at_right_delim()
        if delim:
            return self._lex_right_delim if self.paren_depth == 0 else self._error("unclosed left paren")
        char = self._next()
        if char is None:
            return self._error("unclosed action")
        if char in _SPACE:
            self.pos -= 1
            return self._lex_space
        if char == "=":
            self._emit("assign")
        elif char == ":":
            if self._next() != "=":
                return self._error("expected :=")
            self._emit("declare")
        elif char == "|":
            self._emit("pipe")
        elif char == '"':
            return self._lex_quote
        elif char == "`":
            return self._lex_raw_quote
        elif char == "$":
            return self._lex_variable
        elif char == "'":
            return self._lex_char
        elif char == "." and self.pos < len(self.text) and not "0" <= self.text[self.pos] <= "9":
            return self._lex_field
        elif char in "+-." or "0" <= char <= "9":
            self.pos -= 1
            return self._lex_number
        elif _alphanumeric(char):
            self.pos -= 1
            return self._lex_identifier
        elif char == "(":
            self.paren_depth += 1
            self._emit("lparen")
        elif char == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self._error("unexpected right paren")
            self._emit("rparen")
        elif char.isascii() and char.isprintable():
            self._emit("char")
        else:
            return self._error(f"unrecognized character in action: {_rune(char)}")
        return self._lex_inside_action

    def _lex_space(self):
        spaces = 0
        while (char := self._peek()) is not None and char in _SPACE:
            self.pos += 1
            spaces += 1
        # " -}}" is a trim-marked right delimiter, not a space followed by a minus.
        if _has_right_trim(self.text[self.pos - 1 :]) and self.text.startswith(_RIGHT, self.pos + 1):
            self.pos -= 1
            if spaces == 1:
                return self._lex_right_delim
        self._emit("space")
        return self._lex_inside_action

    def _lex_identifier(self):
        while (char := self._peek()) is not None and _alphanumeric(char):
            self.pos += 1
        word = self.text[self.start : self.pos]
        if not self._at_terminator():
            return self._error(f"bad character {_rune(self._peek() or '')}")
        if word in KEYWORDS:
            self._emit(word)
        elif word in ("true", "false"):
            self._emit("bool")
        else:
            self._emit("identifier")
        return self._lex_inside_action

    def _lex_field(self):
        return self._lex_field_or_variable("field")

    def _lex_variable(self):
        if self._at_terminator():
            self._emit("variable")
            return self._lex_inside_action
        return self._lex_field_or_variable("variable")

    def _lex_field_or_variable(self, kind: str):
        if self._at_terminator():
            self._emit("variable" if kind == "variable" else "dot")
            return self._lex_inside_action
        while (char := self._peek()) is not None and _alphanumeric(char):
            self.pos += 1
        if not self._at_terminator():
            return self._error(f"bad character {_rune(self._peek() or '')}")
        self._emit(kind)
        return self._lex_inside_action

    def _lex_quoted(self, quote: str, kind: str, unterminated: str):
        while True:
            char = self._next()
            if char == "\\":
                char = self._next()
                if char is not None and char != "\n":
                    continue
            if char is None or char == "\n":
                return self._error(unterminated)
            if char == quote:
                break
        self._emit(kind)
        return self._lex_inside_action

    def _lex_quote(self):
        return self._lex_quoted('"', "string", "unterminated quoted string")

    def _lex_char(self):
        return self._lex_quoted("'", "char_constant", "unterminated character constant")

    def _lex_raw_quote(self):
        end = self.text.find("`", self.pos)
        if end < 0:
            return self._error("unterminated raw quoted string")
        self.pos = end + 1
        self._emit("raw")
        return self._lex_inside_action

    def _lex_number(self):
        if not self._scan_number():
            return self._error(f"bad number syntax: {_go_quote(self.text[self.start : self.pos])}")
        if self._peek() in ("+", "-"):  # complex: 1+2i
            if not self._scan_number() or self.text[self.pos - 1] != "i":
                return self._error(f"bad number syntax: {_go_quote(self.text[self.start : self.pos])}")
            self._emit("complex")
        else:
            self._emit("number")
        return self._lex_inside_action

    def _scan_number(self) -> bool:
        self._accept("+-")
        digits = "0123456789_"
        if self._accept("0"):
            if self._accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self._accept("oO"):
                digits = "01234567_"
            elif self._accept("bB"):
                digits = "01_"
        self._accept_run(digits)
        if self._accept("."):
            self._accept_run(digits)
        if len(digits) == 11 and self._accept("eE"):
            self._accept("+-")
            self._accept_run("0123456789_")
        if len(digits) == 23 and self._accept("pP"):
            self._accept("+-")
            self._accept_run("0123456789_")
        self._accept("i")
        following = self._peek()
        if following is not None and _alphanumeric(following):
            self.pos += 1
            return False
        return True


@dataclass
class _Parser:
    """Go's recursive-descent parser (parse.go), keeping only what decides acceptance."""

    tokens: list[_Token]
    functions: frozenset[str]
    name: str
    index: int = 0
    furthest: int = 0
    variables: list[str] = field(default_factory=lambda: ["$"])
    range_depth: int = 0
    action_line: int = 0
    definitions: dict[str, bool] = field(default_factory=dict)  # name -> has content
    calls_without_data: list[str] = field(default_factory=list)

    def parse(self) -> ParsedTemplate:
        while self._peek().kind != "eof":
            if self._peek().kind == "left":
                mark = self.index
                self._next()
                if self._next_non_space().kind == "define":
                    self._definition()
                    continue
                self.index = mark
            node, _ = self._text_or_action()
            if node in ("end", "else"):
                self._errorf(f"unexpected {{{{{node}}}}}")
        return ParsedTemplate(tuple(self.definitions), tuple(self.calls_without_data))

    # Token stream

    def _next(self) -> _Token:
        token = self.tokens[min(self.index, len(self.tokens) - 1)]
        self.index += 1
        self.furthest = max(self.furthest, min(self.index, len(self.tokens)) - 1)
        return token

    def _backup(self) -> None:
        self.index -= 1

    def _peek(self) -> _Token:
        token = self._next()
        self._backup()
        return token

    def _next_non_space(self) -> _Token:
        token = self._next()
        while token.kind == "space":
            token = self._next()
        return token

    def _peek_non_space(self) -> _Token:
        token = self._next_non_space()
        self._backup()
        return token

    # Errors

    def _errorf(self, message: str) -> None:
        line = self.tokens[self.furthest].line
        raise GoTemplateError(f"template: {self.name}:{line}: {message}")

    def _unexpected(self, token: _Token, context: str) -> None:
        if token.kind == "error":
            extra = ""
            if self.action_line and self.action_line != token.line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if token.value.endswith(" action"):
                    extra = extra[len(" in action") :]
            self._errorf(f"{token.value}{extra}")
        self._errorf(f"unexpected {token.describe()} in {context}")

    def _expect(self, kind: str, context: str) -> _Token:
        token = self._next_non_space()
        if token.kind != kind:
            self._unexpected(token, context)
        return token

    # Structure

    def _definition(self) -> None:
        context = "define clause"
        token = self._next_non_space()
        if token.kind not in ("string", "raw"):
            self._unexpected(token, context)
        name = self._unquote(token)
        self._expect("right", context)
        end, content = self._in_new_tree(self._item_list)
        if end != "end":
            self._errorf(f"unexpected {{{{{end}}}}} in {context}")
        self._add_definition(name, content)

    def _item_list(self) -> tuple[str, bool]:
        """Nodes up to ``{{end}}`` or ``{{else}}``: (which one, whether anything but spaces came before it)."""
        content = False
        while self._peek_non_space().kind != "eof":
            node, has_content = self._text_or_action()
            if node in ("end", "else"):
                return node, content
            content = content or has_content
        self._errorf("unexpected EOF")
        raise AssertionError  # unreachable: _errorf raises

    def _text_or_action(self) -> tuple[str, bool]:
        token = self._next_non_space()
        if token.kind == "text":
            return "text", bool(token.value.strip())
        if token.kind == "left":
            self.action_line = token.line
            try:
                return self._action(), True
            finally:
                self.action_line = 0
        self._unexpected(token, "input")
        raise AssertionError

    def _action(self) -> str:
        token = self._next_non_space()
        controls: dict[str, Callable[[], str]] = {
            "block": self._block,
            "else": self._else,
            "end": self._end,
            "if": lambda: self._control("if"),
            "range": lambda: self._control("range"),
            "with": lambda: self._control("with"),
            "template": self._template,
        }
        if token.kind in ("break", "continue"):
            return self._loop_control(token.kind)
        if token.kind in controls:
            return controls[token.kind]()
        self._backup()
        self._pipeline("command", "right")  # its variables live until the enclosing {{end}}
        return "action"

    def _loop_control(self, keyword: str) -> str:
        token = self._next_non_space()
        if token.kind != "right":
            self._unexpected(token, f"{{{{{keyword}}}}}")
        if self.range_depth == 0:
            self._errorf(f"{{{{{keyword}}}}} outside {{{{range}}}}")
        return keyword

    def _control(self, context: str) -> str:
        """``if``/``range``/``with`` pipeline, list, optional ``else`` (or ``else if``/``else with``), ``end``."""
        depth = len(self.variables)
        try:
            self._pipeline(context, "right")
            in_range = int(context == "range")
            self.range_depth += in_range
            end, _ = self._item_list()
            self.range_depth -= in_range
            if end == "else":
                if context in ("if", "with") and self._peek().kind == context:
                    self._next()
                    self._control(context)
                else:
                    end, _ = self._item_list()
                    if end != "end":
                        self._errorf(f"expected end; found {{{{{end}}}}}")
        finally:
            del self.variables[depth:]
        return context

    def _else(self) -> str:
        if self._peek_non_space().kind not in ("if", "with"):  # "else if"/"else with" leave the keyword pending
            self._expect("right", "else")
        return "else"

    def _end(self) -> str:
        self._expect("right", "end")
        return "end"

    def _block(self) -> str:
        context = "block clause"
        name = self._template_name(self._next_non_space(), context)
        self._pipeline(context, "right")
        end, content = self._in_new_tree(self._item_list)
        if end != "end":
            self._errorf(f"unexpected {{{{{end}}}}} in {context}")
        self._add_definition(name, content)
        return "template"

    def _template(self) -> str:
        context = "template clause"
        name = self._template_name(self._next_non_space(), context)
        if self._next_non_space().kind != "right":
            self._backup()
            self._pipeline(context, "right")
        else:
            self.calls_without_data.append(name)
        return "template"

    def _template_name(self, token: _Token, context: str) -> str:
        if token.kind not in ("string", "raw"):
            self._unexpected(token, context)
        return self._unquote(token)

    def _in_new_tree(self, body: Callable[[], tuple[str, bool]]) -> tuple[str, bool]:
        """A ``define``/``block`` body is its own tree: only ``$`` is defined in it, and no ``range`` encloses it."""
        saved = self.variables, self.range_depth
        self.variables, self.range_depth = ["$"], 0
        try:
            return body()
        finally:
            self.variables, self.range_depth = saved

    def _add_definition(self, name: str, content: bool) -> None:
        if self.definitions.get(name) and content:
            self._errorf(f"template: multiple definition of template {_go_quote(name)}")
        self.definitions[name] = self.definitions.get(name, False) or content

    # Pipelines

    def _pipeline(self, context: str, end: str) -> None:
        self._declarations(context)
        commands: list[list[tuple[str, str]]] = []
        while True:
            token = self._next_non_space()
            if token.kind == end:
                self._check_pipeline(commands, context)
                return
            if token.kind not in _OPERAND_STARTS:
                self._unexpected(token, context)
            self._backup()
            commands.append(self._command())

    def _declarations(self, context: str) -> None:
        """``$x :=``, ``$x =`` or, in ``range``, ``$i, $e :=``; a variable that is only an argument is put back."""
        declared = 0
        while self._peek_non_space().kind == "variable":
            mark = self.index
            variable = self._next()
            following = self._peek_non_space()
            if following.kind in ("assign", "declare"):
                self._next_non_space()
                self.variables.append(variable.value)
                return
            if following.kind == "char" and following.value == ",":
                self._next_non_space()
                self.variables.append(variable.value)
                declared += 1
                if context == "range" and declared < 2:
                    if self._peek_non_space().kind in ("variable", "right", "rparen"):
                        continue
                    self._errorf("range can only initialize variables")
                self._errorf(f"too many declarations in {context}")
            self.index = mark
            return

    def _check_pipeline(self, commands: list[list[tuple[str, str]]], context: str) -> None:
        if not commands:
            self._errorf(f"missing value for {context}")
        for stage, command in enumerate(commands[1:], start=2):
            if command[0][0] in ("bool", "dot", "nil", "number", "string"):
                self._errorf(f"non executable command in pipeline stage {stage}")

    def _command(self) -> list[tuple[str, str]]:
        operands: list[tuple[str, str]] = []
        while True:
            self._peek_non_space()
            operand = self._operand()
            if operand is not None:
                operands.append(operand)
            token = self._next()
            if token.kind == "space":
                continue
            if token.kind in ("right", "rparen"):
                self._backup()
            elif token.kind != "pipe":
                self._unexpected(token, "operand")
            break
        if not operands:
            self._errorf("empty command")
        return operands

    def _operand(self) -> tuple[str, str] | None:
        term = self._term()
        if term is None:
            return None
        if self._peek().kind == "field":
            while self._peek().kind == "field":
                self._next()
            if term[0] in ("bool", "string", "number", "nil", "dot"):
                self._errorf(f"unexpected . after term {_go_quote(term[1])}")
            return ("chain", term[1])
        return term

    def _term(self) -> tuple[str, str] | None:
        token = self._next_non_space()
        kind, value = token.kind, token.value
        if kind == "identifier" and value not in self.functions:
            self._errorf(f"function {_go_quote(value)} not defined")
        if kind == "variable" and value not in self.variables:
            self._errorf(f"undefined variable {_go_quote(value)}")
        if kind in ("char_constant", "complex", "number"):
            self._check_number(token)
            return ("number", value)
        if kind == "lparen":
            self._pipeline("parenthesized pipeline", "rparen")
            return ("pipeline", "(...)")
        if kind in ("string", "raw"):
            self._unquote(token)
            return ("string", value)
        if kind in ("identifier", "dot", "nil", "variable", "field", "bool"):
            return (kind, value)
        self._backup()
        return None

    def _check_number(self, token: _Token) -> None:
        text = token.value
        if token.kind == "char_constant":
            if not _CHAR_CONSTANT.fullmatch(text):
                self._errorf(f"malformed character constant: {text}")
            return
        if token.kind != "complex" and not _is_go_number(text):
            self._errorf(f"illegal number syntax: {_go_quote(text)}")

    def _unquote(self, token: _Token) -> str:
        """Go's strconv.Unquote, as a check: an unknown escape in a quoted string is "invalid syntax".

        The text comes back with its escapes as written; only template names use it, to tell definitions apart.
        """
        inner = token.value[1:-1]
        if token.kind == "string" and "\\" in _STRING_ESCAPE.sub("", inner):
            self._errorf("invalid syntax")
        return inner


def _is_go_number(text: str) -> bool:
    """What Go's parser makes of a number the lexer let through: an integer in any base, a float, imaginary."""
    body = (text[:-1] if text.endswith("i") else text).replace("_", "")
    unsigned = body[1:] if body[:1] in ("+", "-") else body
    if re.fullmatch(r"0[0-7]*", unsigned):  # 0 and Go's legacy octal (017)
        return True
    try:
        int(unsigned, 0)
        return True
    except ValueError:
        pass
    try:
        float.fromhex(unsigned) if unsigned[:2].lower() == "0x" else float(unsigned)
    except ValueError:
        return False
    return any(char.isdigit() for char in unsigned)


def _has_left_trim(rest: str) -> bool:
    return len(rest) >= 2 and rest[0] == "-" and rest[1] in _SPACE


def _has_right_trim(rest: str) -> bool:
    return len(rest) >= 2 and rest[0] in _SPACE and rest[1] == "-"


def _left_trim_length(rest: str) -> int:
    return len(rest) - len(rest.lstrip(_SPACE))


def _alphanumeric(char: str) -> bool:
    """Go's isAlphaNumeric: ``_``, a Unicode letter or a decimal digit."""
    return char == "_" or char.isalpha() or char.isdecimal()


def _rune(char: str) -> str:
    """Go's ``%#U``: ``U+007D '}'``."""
    if not char:
        return "U+FFFFFFFFFFFFFFFF"
    return f"U+{ord(char):04X}" + (f" '{char}'" if char.isprintable() else "")


def _go_quote(text: str) -> str:
    """Go's ``%q`` for the text this parser quotes (close enough for error messages)."""
    return json.dumps(text, ensure_ascii=False)
