"""The parser: phenotype text -> :class:`ArchSpec`, or one error naming the token and where.

Whitespace and ``#`` comments between tokens are free (PonyGE2 keeps a grammar's literal
spaces). Arguments bind to a layer's parameters Python-style (positional, then keywords), values
are read through the parameters' kinds, and the feature-map/vector order is checked as the
layers are read, so every spec this returns resolves for every input size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from evo.arch.kinds import REQUIRED, BadValue, Param
from evo.arch.layers import Layer
from evo.arch.recipe import RECIPE_PARAMS, Recipe
from evo.arch.syntax import (
    LAYER_ALIASES,
    SYNTAX_BY_NAME,
    ArchSpec,
    LayerSyntax,
    find_param,
    known_layers_hint,
    recipe_hint,
    signature_hint,
)
from evo.errors import EvoError

__all__ = ["MAX_TEXT_CHARS", "MAX_TOKEN_CHARS", "ArchParseError", "parse_arch"]


class ArchParseError(EvoError):
    """Phenotype text that is not a valid architecture; says which token, where, and why."""

    def __init__(self, message: str, hint: str = "", *, token: str = "", line: int = 0,
                 col: int = 0) -> None:
        super().__init__(message, hint)
        self.token = token
        self.line = line
        self.col = col


_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<comment>#[^\n]*)"
    r"|(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<punct>[(),=|])",
    re.ASCII,
)


# Every number and name in the language fits in a few characters; longer tokens are refused
# before any conversion (int() of a 5,000-digit text raises ValueError), and so are texts far
# longer than any phenotype (a grammar's phenotypes are a few hundred characters).
MAX_TOKEN_CHARS = 32
MAX_TEXT_CHARS = 100_000


@dataclass(frozen=True)
class _Token:
    kind: str  # num, name, punct, end
    text: str
    pos: int


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.i = 0

    # -- errors ------------------------------------------------------------------------------

    def _where(self, pos: int) -> tuple[int, int, str]:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        where = f"line {line}, column {col}" if "\n" in self.text.strip() else f"column {col}"
        return line, col, where

    def error(self, token: _Token, problem: str, hint: str = "") -> ArchParseError:
        line, col, where = self._where(token.pos)
        text = token.text if len(token.text) <= 40 else token.text[:37] + "..."
        shown = "end of text" if token.kind == "end" else repr(text)
        return ArchParseError(
            f"{problem} at {where}: {shown}", hint, token=token.text, line=line, col=col
        )

    # -- tokens ------------------------------------------------------------------------------

    def _tokenize(self, text: str) -> list[_Token]:
        tokens: list[_Token] = []
        pos = 0
        if len(text) > MAX_TEXT_CHARS:
            raise ArchParseError(
                f"architecture text is {len(text):,} characters; the limit is "
                f"{MAX_TEXT_CHARS:,}", "a network is a few hundred characters of layers")
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                bad = _Token("bad", text[pos], pos)
                raise self.error(
                    bad,
                    "unexpected character",
                    "the language uses names, numbers, ( ) , = | and whitespace only",
                )
            kind = m.lastgroup or ""
            if kind in ("num", "name") and m.end() - pos > MAX_TOKEN_CHARS:
                raise self.error(
                    _Token(kind, m.group(), pos),
                    f"{'number' if kind == 'num' else 'name'} of {m.end() - pos:,} characters "
                    f"(the limit is {MAX_TOKEN_CHARS})",
                    "numbers in the language are small: filters up to 4096, dense units up to "
                    "65536, rates like 0.001 or 1e-3" if kind == "num" else
                    "names are short words such as conv, dense or optimizer",
                )
            if kind not in ("ws", "comment"):
                tokens.append(_Token(kind, m.group(), pos))
            pos = m.end()
        tokens.append(_Token("end", "", len(text)))
        return tokens

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def expect(self, text: str, context: str) -> _Token:
        token = self.take()
        if token.text != text or token.kind != "punct":
            raise self.error(token, f"expected '{text}' {context}")
        return token

    # -- grammar -----------------------------------------------------------------------------

    def parse(self) -> ArchSpec:
        layers: list[Layer] = []
        on_map = True
        vector_maker = ""
        while True:
            token = self.peek()
            if token.kind == "end" or (token.kind == "punct" and token.text == "|"):
                break
            layer, syntax = self.layer()
            if syntax.needs_map and not on_map:
                raise self.error(
                    token,
                    f"{syntax.name} needs a feature map but follows {vector_maker}",
                    "convolutions and pooling go before gap/flatten/dense",
                )
            if syntax.makes_vector and on_map:
                on_map, vector_maker = False, syntax.name
            layers.append(layer)
        if not layers:
            raise self.error(self.peek(), "expected a layer", "a network needs at least one layer")
        recipe = Recipe()
        if self.peek().kind == "punct" and self.peek().text == "|":
            self.take()
            recipe = self.recipe()  # reads to the end of the text
        return ArchSpec(tuple(layers), recipe)

    def layer(self) -> tuple[Layer, LayerSyntax]:
        token = self.take()
        if token.kind != "name":
            raise self.error(token, "expected a layer name", known_layers_hint())
        name = token.text.lower()
        syntax = SYNTAX_BY_NAME.get(LAYER_ALIASES.get(name, name))
        if syntax is None:
            raise self.error(token, "unknown layer", known_layers_hint())
        args: list[tuple[_Token | None, _Token]] = []  # (keyword or None, value)
        nxt = self.peek()
        if nxt.kind == "punct" and nxt.text == "(":
            self.take()
            args = self.arguments(syntax)
        values = self.bind(syntax, token, args)
        layer = syntax.cls(**dict(syntax.fixed), **values)
        return layer, syntax

    def arguments(self, syntax: LayerSyntax) -> list[tuple[_Token | None, _Token]]:
        args: list[tuple[_Token | None, _Token]] = []
        if self.peek().kind == "punct" and self.peek().text == ")":
            self.take()
            return args
        while True:
            first = self.take()
            if first.kind not in ("num", "name"):
                raise self.error(first, f"expected a value for {syntax.name}")
            nxt = self.peek()
            if first.kind == "name" and nxt.kind == "punct" and nxt.text == "=":
                self.take()
                value = self.take()
                if value.kind not in ("num", "name"):
                    raise self.error(value, f"expected a value after '{first.text}='")
                args.append((first, value))
            else:
                args.append((None, first))
            sep = self.take()
            if sep.kind == "punct" and sep.text == ")":
                return args
            if not (sep.kind == "punct" and sep.text == ","):
                raise self.error(sep, f"expected ',' or ')' in {syntax.name}(...)")

    def bind(
        self, syntax: LayerSyntax, name_token: _Token, args: list[tuple[_Token | None, _Token]]
    ) -> dict[str, Any]:
        """Match positional and keyword arguments to parameters, Python-style."""
        given: dict[str, tuple[Param, _Token]] = {}
        seen_keyword = False
        for position, (keyword, value) in enumerate(args):
            if keyword is None:
                if seen_keyword:
                    raise self.error(value, "positional argument after a keyword argument")
                if position >= len(syntax.params):
                    raise self.error(
                        value,
                        f"too many arguments for {syntax.name}",
                        signature_hint(syntax),
                    )
                param = syntax.params[position]
                token = value
            else:
                seen_keyword = True
                param = find_param(syntax.params, keyword.text.lower())
                if param is None:
                    raise self.error(
                        keyword, f"{syntax.name} has no parameter", signature_hint(syntax)
                    )
                token = keyword
            if param.field in given:
                raise self.error(token, f"{syntax.name} got {param.key} twice")
            given[param.field] = (param, value)
        values: dict[str, Any] = {}
        for param in syntax.params:
            if param.field in given:
                value = given[param.field][1]
                try:
                    values[param.field] = param.kind.read(value.kind, value.text)
                except BadValue as exc:
                    raise self.error(
                        value, f"{syntax.name} {param.key} must be {exc}"
                    ) from None
            elif param.default is REQUIRED:
                raise self.error(
                    name_token,
                    f"{syntax.name} needs {param.key}",
                    signature_hint(syntax),
                )
            elif callable(param.default):
                values[param.field] = param.default(values)
            else:
                values[param.field] = param.default
        return values

    def recipe(self) -> Recipe:
        given: dict[str, Any] = {}
        while self.peek().kind != "end":
            key = self.take()
            if key.kind != "name":
                raise self.error(key, "expected a recipe setting such as lr=0.01",
                                 recipe_hint())
            param = find_param(RECIPE_PARAMS, key.text.lower())
            if param is None:
                raise self.error(key, "unknown recipe setting", recipe_hint())
            if param.field in given:
                raise self.error(key, f"recipe sets {param.key} twice")
            self.expect("=", f"after {key.text}")
            value = self.take()
            if value.kind not in ("num", "name"):
                raise self.error(value, f"expected a value for {param.key}")
            try:
                given[param.field] = param.kind.read(value.kind, value.text)
            except BadValue as exc:
                raise self.error(value, f"{param.key} must be {exc}") from None
            nxt = self.peek()
            if nxt.kind == "punct" and nxt.text == ",":
                self.take()
        if not given:
            raise self.error(self.peek(), "expected a recipe setting after '|'", recipe_hint())
        return Recipe(**given)


def parse_arch(text: str) -> ArchSpec:
    """Parse phenotype text; raises :class:`ArchParseError` naming the token and its column."""
    return _Parser(text).parse()

