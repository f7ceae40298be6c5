"""Categories under /api/categories/: everyone verified reads, staff write."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from core.validation import Body
from handlers.base import BaseHandler, staff_only, user_only
from handlers.openapi import api
from handlers.replies import Category
from services.catalogue import CatalogueService

Slug = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]


class CategoryBody(Body):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    slug: Slug | None = None
    description: Annotated[str, Field(max_length=2000)] = ""


class CategoryPatch(Body):
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    slug: Slug | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None


class CatalogueHandler(BaseHandler):
    @property
    def catalogue(self) -> CatalogueService:
        return self.services.catalogue


class CategoryListHandler(CatalogueHandler):
    @api("Every category, oldest first", responses={200: list[Category]})
    @user_only
    async def get(self) -> None:
        self.send_json(await self.catalogue.list_categories())

    @api("Create a category", body=CategoryBody, responses={201: Category})
    @staff_only
    async def post(self) -> None:
        body = self.parse(CategoryBody)
        self.send_json(
            await self.catalogue.create_category(body.name, body.slug, body.description), status=201
        )


class CategoryHandler(CatalogueHandler):
    @api("Change a category", body=CategoryPatch, responses={200: Category})
    @staff_only
    async def patch(self, category_id: str) -> None:
        body = self.parse(CategoryPatch)
        fields = body.model_dump(exclude_unset=True, exclude_none=True)
        self.send_json(await self.catalogue.update_category(category_id, fields))

    @api("Delete a category", responses={204: None}, errors=[409])
    @staff_only
    async def delete(self, category_id: str) -> None:
        await self.catalogue.delete_category(category_id)
        self.set_status(204)
        self.finish()


routes = [
    (r"/api/categories/?", CategoryListHandler),
    (r"/api/categories/([^/]+)/?", CategoryHandler),
]
