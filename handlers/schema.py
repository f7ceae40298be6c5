"""GET /api/schema/: the OpenAPI 3.1 document of this very app, generated once from its handlers."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from core.validation import Query, one_of
from handlers.base import BaseHandler, dumps, public
from handlers.openapi import Reply, api, build_document

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def project_version() -> str:
    """The version pyproject.toml gives the project."""
    with PYPROJECT.open("rb") as file:
        return tomllib.load(file)["project"]["version"]


class SchemaQuery(Query):
    format: one_of(("json", "yaml")) = Field("json", description="`yaml` for YAML.")


class SchemaHandler(BaseHandler):
    def document(self) -> dict[str, Any]:
        """The document, built on the first request and kept for the app's life."""
        settings = self.application.settings
        if "openapi_document" not in settings:
            public_url = getattr(self.config.server, "public_url", None)
            servers = [{"url": public_url.rstrip("/") + "/"}] if public_url else None
            settings["openapi_document"] = build_document(
                settings["handler_modules"],
                version=project_version(),
                servers=servers,
                settings=self.validation_context(),
            )
        return settings["openapi_document"]

    @api(
        "This OpenAPI 3.1 document, generated from the handlers' declarations",
        query=SchemaQuery,
        responses={200: Reply("The document.", ("application/json", "application/yaml"))},
    )
    @public
    def get(self) -> None:
        document = self.document()
        self.set_header("Cache-Control", "no-cache")  # the same for the server's life, but re-check
        if self.query(SchemaQuery).format == "yaml":
            self.set_header("Content-Type", "application/yaml; charset=UTF-8")
            self.finish(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
            return
        self.finish(dumps(document))


routes = [
    (r"/api/schema/?", SchemaHandler),
]
