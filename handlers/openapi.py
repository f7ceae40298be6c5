"""The OpenAPI 3.1 document, generated from what the handlers declare.

A handler method declares itself once, next to its access mark:

    @api("Sign up", body=SignupBody, responses={201: SignupReply}, throttled=True)
    @public
    async def post(self) -> None: ...

The body and query models are the very pydantic models the method validates with (`self.parse`,
`self.query`); the replies are pydantic models (handlers/replies.py). The path comes from the route's
regex, each group named after the method's own parameter; the security from the access mark; the
error answers from what the method takes (a body or a query: 400, an id: 404, a user: 401, staff: 403).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from core.validation import SETTING_KEYWORDS
from handlers.base import PUBLIC, STAFF, USER
from handlers.replies import Detail, FieldErrors
from handlers.route_templates import Route, implemented, routes_of

F = TypeVar("F", bound=Callable[..., Any])

REF = "#/components/schemas/{model}"
JSON = "application/json"
# Media types whose bodies are structured documents (the rest are bytes).
STRUCTURED = (JSON, "application/yaml")
SECURITY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "Authorization",
    "description": "`Token <token>`, the token from `POST /api/accounts/login/` (or signup/verify).",
}
ERROR_TEXT = {
    400: "Malformed JSON, field errors `{field: [sentence]}`, or a path parameter that is not UTF-8.",
    401: "No valid token, or the account is not verified or not active.",
    403: "The caller may not do this.",
    404: "Not found.",
    409: "The current state forbids it.",
    410: "Expired.",
    413: "Over the size limit.",
    415: "Unsupported media type.",
    412: "A precondition (such as the protocol version) does not hold.",
    416: "Range not satisfiable.",
    423: "Another request holds the resource; retry after Retry-After seconds.",
    429: "Throttled; see Retry-After.",
    503: "A dependency does not answer.",
    507: "Not enough storage space on the server.",
}


@dataclass(frozen=True)
class Reply:
    """A response other than a JSON model: raw bytes in some media types, no body, or headers."""

    description: str
    media_types: tuple[str, ...] = ()
    model: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Header:
    """A request header the operation reads; its schema says what the handler accepts (keys such as
    `x-maximum-setting` take their value from the app's settings, as in with_settings)."""

    name: str
    description: str
    required: bool = False
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Operation:
    """What one handler method declares about itself."""

    summary: str
    body: type[BaseModel] | None = None
    body_media_type: str = JSON
    files: tuple[str, ...] = ()
    raw_body: str | None = None
    query: type[BaseModel] | None = None
    headers: tuple[Header, ...] = ()
    responses: dict[int, Any] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    description: str = ""
    path_descriptions: dict[str, str] = field(default_factory=dict)


def api(
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    body_media_type: str = JSON,
    files: Sequence[str] = (),
    raw_body: str | None = None,
    query: type[BaseModel] | None = None,
    headers: Sequence[Header] = (),
    responses: dict[int, Any] | None = None,
    errors: Sequence[int] = (),
    throttled: bool = False,
    description: str = "",
    path: dict[str, str] | None = None,
) -> Callable[[F], F]:
    """Declare a handler method for the document: its body and query models (the ones it validates
    with; `raw_body` names the media type of a body of bytes instead), its request headers, its
    replies by status (a model, a type such as `list[Video]`, a `Reply`, or None for no body), the
    extra error statuses it answers, and descriptions of its path parameters."""
    operation = Operation(
        summary=summary,
        body=body,
        body_media_type=body_media_type,
        files=tuple(files),
        raw_body=raw_body,
        query=query,
        headers=tuple(headers),
        responses=dict(responses or {200: None}),
        errors=tuple(errors) + ((429,) if throttled else ()),
        description=description,
        path_descriptions=dict(path or {}),
    )

    def mark(method: F) -> F:
        method.openapi = operation  # type: ignore[attr-defined]
        return method

    return mark


# --- the document ------------------------------------------------------------------------------


class Components:
    """The shared schemas, collected as models are referenced; `settings` gives the values of
    constraints that come from the configuration (core.validation.min_length_from, one_of_setting)."""

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.schemas: dict[str, Any] = {}
        self.settings = settings or {}

    def schema(self, kind: Any, mode: str = "serialization") -> dict[str, Any]:
        """The JSON schema of a model or type, its definitions moved to components."""
        schema = self.json_schema(kind, mode)
        for name, definition in schema.pop("$defs", {}).items():
            self.add(name, definition)
        if isinstance(kind, type) and issubclass(kind, BaseModel) and "$ref" not in schema:
            self.add(kind.__name__, schema)
            return {"$ref": REF.format(model=kind.__name__)}
        return schema

    def json_schema(self, kind: Any, mode: str) -> dict[str, Any]:
        """pydantic's schema, with each configured minimum length written out as `minLength`."""
        schema = TypeAdapter(kind).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        return with_settings(schema, self.settings)

    def add(self, name: str, definition: dict[str, Any]) -> None:
        """Keep a named schema; two different ones under one name would make wrong references."""
        known = self.schemas.setdefault(name, definition)
        if known != definition:
            raise ValueError(f"two different schemas are both named {name!r}")


def with_settings(schema: Any, settings: dict[str, Any]) -> Any:
    """The schema with every `x-min-length-setting: name` replaced by `minLength` and that setting's
    value, every `x-enum-setting: name` by `enum` and its choices (left out when the document is
    built without settings, as the tests' checker does)."""
    if isinstance(schema, list):
        return [with_settings(item, settings) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: with_settings(value, settings) for key, value in schema.items()}
    for key, keyword in SETTING_KEYWORDS.items():
        setting = result.pop(key, None)
        if setting is not None and setting in settings:
            value = settings[setting]
            result[keyword] = list(value) if isinstance(value, tuple | list) else value
    return result


def reply_object(status: int, reply: Any, components: Components) -> dict[str, Any]:
    """One response: a JSON model, raw bytes, or nothing."""
    if isinstance(reply, Reply):
        answer: dict[str, Any] = {"description": reply.description}
        if reply.model is not None:
            answer["content"] = {JSON: {"schema": components.schema(reply.model)}}
        elif reply.media_types:
            answer["content"] = {
                m: {"schema": {"type": "object" if m in STRUCTURED else "string"}} for m in reply.media_types
            }
        if reply.headers:
            answer["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in reply.headers.items()
            }
        return answer
    if reply is None:
        return {"description": "No body." if status == 204 else "OK."}
    return {"description": "OK.", "content": {JSON: {"schema": components.schema(reply)}}}


def error_statuses(level: str, op: Operation, has_path_params: bool) -> list[int]:
    """The error answers a method gives by its shape, plus those it declares."""
    statuses = set(op.errors)
    if level in (USER, STAFF):
        statuses.add(401)
    if level == STAFF:
        statuses.add(403)
    if op.body is not None or op.query is not None:
        statuses.add(400)
    if op.body is not None or op.raw_body is not None:
        statuses.add(415)
    if has_path_params:
        statuses.update((400, 404))  # 400: a path parameter that is not UTF-8 (Tornado refuses it)
    return sorted(statuses - set(op.responses))


def error_object(status: int, components: Components) -> dict[str, Any]:
    """An error answer: `{"detail"}`, or for 400 also the field errors."""
    detail = components.schema(Detail)
    schema = {"anyOf": [detail, components.schema(FieldErrors)]} if status == 400 else detail
    return {"description": ERROR_TEXT.get(status, "Error."), "content": {JSON: {"schema": schema}}}


def query_parameters(model: type[BaseModel], components: Components) -> list[dict[str, Any]]:
    """One `in: query` parameter per field of a query model."""
    schema = components.json_schema(model, "validation")
    for name, definition in schema.pop("$defs", {}).items():
        components.add(name, definition)
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = query_schema(prop)
        description = prop.pop("description", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        params.append(param)
    return params


def query_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A query field's schema without what a query cannot carry: null, and a null default."""
    prop = {k: v for k, v in prop.items() if k != "title" and not (k == "default" and v is None)}
    options = [option for option in prop.pop("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        prop.update(options[0])
    elif options:
        prop["anyOf"] = options
    return prop


def body_object(op: Operation, components: Components) -> dict[str, Any]:
    """The request body: the validating model as JSON, or as multipart with its file parts."""
    assert op.body is not None
    if op.body_media_type == JSON:
        return {"required": True, "content": {JSON: {"schema": components.schema(op.body, "validation")}}}
    schema = components.json_schema(op.body, "validation")
    for name, definition in schema.pop("$defs", {}).items():
        components.add(name, definition)
    schema.pop("title", None)
    for name in op.files:
        schema["properties"] = {name: {"type": "string", "format": "binary"}, **schema["properties"]}
        schema["required"] = [name, *schema.get("required", [])]
    return {"required": True, "content": {op.body_media_type: {"schema": schema}}}


def operation_object(route: Route, name: str, components: Components) -> dict[str, Any]:
    """The OpenAPI operation of one handler method."""
    method = getattr(route.handler, name)
    op: Operation = method.openapi
    level = method.access
    result: dict[str, Any] = {
        "operationId": f"{name}_{route.handler.__module__.rsplit('.', 1)[-1]}_{route.handler.__name__}",
        "summary": op.summary,
        "tags": [route.template.split("/")[2] if route.template.count("/") > 2 else "api"],
    }
    if op.description:
        result["description"] = op.description
    result["security"] = [] if level == PUBLIC else [{"Token": []}]
    if level != PUBLIC:
        result["x-access"] = level
    params: list[dict[str, Any]] = [
        {
            "name": pname,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": f"^(?:{regex})$"},
            **({"description": op.path_descriptions[pname]} if pname in op.path_descriptions else {}),
        }
        for pname, regex in route.parameters
    ]
    if op.query is not None:
        params += query_parameters(op.query, components)
    params += [
        {
            "name": h.name,
            "in": "header",
            "required": h.required,
            "description": h.description,
            "schema": with_settings(h.schema, components.settings),
        }
        for h in op.headers
    ]
    if params:
        result["parameters"] = params
    if op.body is not None:
        result["requestBody"] = body_object(op, components)
    elif op.raw_body is not None:
        binary = {"type": "string", "format": "binary"}
        result["requestBody"] = {"required": True, "content": {op.raw_body: {"schema": binary}}}
    responses = {
        str(status): reply_object(status, reply, components) for status, reply in op.responses.items()
    }
    for status in error_statuses(level, op, bool(route.parameters)):
        responses[str(status)] = error_object(status, components)
    if name == "head":  # the same answers, without a body
        for answer in responses.values():
            answer.pop("content", None)
    result["responses"] = dict(sorted(responses.items()))
    return result


def build_document(
    modules: Iterable[ModuleType],
    *,
    version: str,
    servers: list[dict[str, str]] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these handler modules; methods that declare nothing are left out
    (tests/test_openapi.py fails on them). `settings`: the validation context the handlers use
    (handlers.base.validation_context), whose values constraints such as a minimum length show."""
    components = Components(settings)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes_of(modules):
        for name in implemented(route.handler):
            if hasattr(getattr(route.handler, name), "openapi"):
                operation = operation_object(route, name, components)
                paths.setdefault(route.template, {})[name] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Videoflix API",
            "version": version,
            "description": "Generated from the handlers' own declarations (handlers/openapi.py). "
            'Errors are `{"detail": "<sentence>"}`, or `{"<field>": ["<sentence>"]}` with 400.',
        },
        "servers": servers or [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "securitySchemes": {"Token": SECURITY_SCHEME},
        },
    }
    return document


def undocumented(modules: Iterable[ModuleType], document: dict[str, Any]) -> list[str]:
    """Every `METHOD /template` the modules' routes implement that the document lacks."""
    missing = []
    for route in routes_of(modules):
        for name in implemented(route.handler):
            if name not in document["paths"].get(route.template, {}):
                missing.append(f"{name.upper()} {route.template} ({route.handler.__name__})")
    return missing
