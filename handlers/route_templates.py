"""Path templates from route regexes: `/api/videos/([^/]+)/?` → `/api/videos/{video_id}/`.

Each group is named after the handler method's own parameter, so routes stay plain regexes.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

import tornado.web

from handlers.base import HTTP_METHODS


def split_groups(pattern: str) -> list[tuple[str, str | None]]:
    """The route regex as literal pieces and top-level capture groups: [(text, None), (regex, 'group')]."""
    pieces: list[tuple[str, str | None]] = []
    literal, group, depth, index = "", "", 0, 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            token = pattern[index : index + 2]
            index += 2
            if depth:
                group += token
            else:
                literal += token[1]
            continue
        index += 1
        if char == "(":
            if depth == 0:
                pieces.append((literal, None))
                literal, group = "", ""
            else:
                group += char
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                pieces.append((group, "group"))
            else:
                group += char
        elif depth:
            group += char
        else:
            literal += char
    pieces.append((literal, None))
    return pieces


def path_parameters(handler: type, count: int) -> list[str]:
    """The names of the first `count` parameters of the handler's methods (the route's groups)."""
    for name in HTTP_METHODS:
        method = getattr(handler, name, None)
        if method is None or not hasattr(method, "access") or name == "options":
            continue
        params = [p for p in inspect.signature(method).parameters.values() if p.name != "self"]
        if len(params) >= count and all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[:count]):
            return [p.name for p in params[:count]]
    return [f"arg{i}" for i in range(count)]


@dataclass(frozen=True)
class Route:
    """One route as the document shows it."""

    template: str  # /api/videos/{video_id}/
    regex: str  # the route's own regex
    handler: type
    parameters: tuple[tuple[str, str], ...]  # (name, regex)


NAMED_GROUP = re.compile(r"^\?P<(\w+)>(.*)$", re.S)


def route_of(pattern: str, handler: type) -> Route:
    """The path template of a route: groups named after the handler's parameters, `/?` as `/`."""
    pieces = split_groups(pattern)
    groups = [text for text, kind in pieces if kind]
    names = path_parameters(handler, len(groups))
    template, params, names_left = "", [], iter(names)
    for text, kind in pieces:
        if kind:
            name = next(names_left)
            named = NAMED_GROUP.match(text)
            if named:  # (?P<name>regex): Tornado passes it by that name
                name, text = named.group(1), named.group(2)
            elif text.startswith("?"):
                raise ValueError(f"route {pattern!r}: only plain or named groups can become path parameters")
            template += "{" + name + "}"
            params.append((name, text))
        else:
            template += text.replace("?", "").lstrip("^").rstrip("$")
    return Route(template, pattern, handler, tuple(params))


def routes_of(modules: Iterable[ModuleType]) -> list[Route]:
    """Every route of these handler modules, in the order the app matches them."""
    return [route_of(rule[0], rule[1]) for module in modules for rule in module.routes]


def implemented(handler: type) -> list[str]:
    """The HTTP methods a handler implements itself (OPTIONS only when it declares it: CORS is implicit)."""
    found = []
    for name in HTTP_METHODS:
        method = getattr(handler, name, None)
        if method is None or method is getattr(tornado.web.RequestHandler, name, None):
            continue
        if not hasattr(method, "access"):
            continue
        if name == "options" and not hasattr(method, "openapi"):
            continue
        found.append(name)
    return found
