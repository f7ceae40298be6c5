"""Every answer the suite receives, checked against the app's own OpenAPI document."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from jsonschema import Draft202012Validator

from handlers.openapi import build_document
from handlers.route_templates import routes_of

_documents: dict[tuple[int, ...], DocumentCheck] = {}


class DocumentCheck:
    """Finds the operation a request hit and holds its answer to the document."""

    def __init__(self, modules: Sequence[ModuleType]) -> None:
        self.modules = list(modules)
        self.document = build_document(modules, version="test")
        self.routes = [(re.compile(route.regex + "$"), route) for route in routes_of(modules)]

    @classmethod
    def of(cls, modules: Sequence[ModuleType]) -> DocumentCheck:
        key = tuple(map(id, modules))  # each check keeps its modules alive, so ids are not reused
        if key not in _documents:
            _documents[key] = cls(modules)
        return _documents[key]

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any] | None] | None:
        """(template, operation) of the route the path reaches; None past the routes (the JSON 404)."""
        for regex, route in self.routes:
            if regex.match(path):
                declared = getattr(getattr(route.handler, method.lower(), None), "openapi", None)
                if declared is None and hasattr(getattr(route.handler, method.lower(), None), "access"):
                    return None  # a test-only handler mounted by a module's tests: not the app's API
                return route.template, self.document["paths"].get(route.template, {}).get(method.lower())
        return None

    def check(self, method: str, path: str, code: int, headers: Any, body: bytes) -> None:
        """AssertionError when the answer is not what the document says for this operation and status."""
        found = self.operation(method, path.split("?")[0])
        if found is None or method == "OPTIONS":
            return
        template, operation = found
        where = f"{method} {path} ({template}) answered {code}"
        if operation is None:
            assert code == 405, f"{where}: the method is not in the document"
            return
        answer = operation["responses"].get(str(code))
        assert answer is not None, f"{where}: status not in the document ({sorted(operation['responses'])})"
        content = answer.get("content")
        if not body:
            return
        assert content, f"{where}: a body where the document declares none"
        media_type = headers.get("Content-Type", "").split(";")[0].strip()
        assert media_type in content, f"{where}: {media_type!r} is not one of {sorted(content)}"
        if media_type != "application/json":
            return
        schema = {**content[media_type]["schema"], "components": self.document["components"]}
        errors = sorted(Draft202012Validator(schema).iter_errors(json.loads(body)), key=str)
        if errors:
            raise AssertionError(
                f"{where}: the body breaks the document: {errors[0].message[:300]} at {list(errors[0].path)}"
            )
