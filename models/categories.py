"""Categories: documents in the `categories` collection and the queries on them."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from core.clock import isoformat
from models.db import Database, object_id

INDEXES = [
    IndexModel([("slug", ASCENDING)], unique=True, name="slug_unique"),
    IndexModel([("created_at", ASCENDING), ("_id", ASCENDING)], name="created_at"),
]


class SlugTaken(Exception):
    """Another category has this slug."""


def slugify(text: str) -> str:
    """'Science & Nature' → 'science-nature' (ASCII, lower case, hyphens)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:80]


def to_api(doc: dict[str, Any]) -> dict[str, Any]:
    """A category as the API shows it."""
    return {
        "id": str(doc["_id"]),
        "name": doc["name"],
        "slug": doc["slug"],
        "description": doc.get("description", ""),
        "created_at": isoformat(doc.get("created_at")),
    }


class Categories:
    """Queries on the `categories` collection, with the list cached until the next write."""

    def __init__(self, db: Database) -> None:
        self.collection = db.categories
        self._cached: list[dict[str, Any]] | None = None

    def invalidate(self) -> None:
        self._cached = None

    async def all(self) -> list[dict[str, Any]]:
        """Every category, oldest first (ties by id)."""
        if self._cached is None:
            docs = (
                await self.collection.find({})
                .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
                .to_list(None)
            )
            self._cached = docs
        return self._cached

    async def get(self, category_id: str | ObjectId) -> dict[str, Any] | None:
        """One category by id."""
        oid = category_id if isinstance(category_id, ObjectId) else object_id(category_id)
        return await self.collection.find_one({"_id": oid}) if oid else None

    async def find(self, id_or_slug: str) -> dict[str, Any] | None:
        """One category by id or by slug."""
        oid = object_id(id_or_slug)
        query: dict[str, Any] = {"$or": [{"_id": oid}, {"slug": id_or_slug}]} if oid else {"slug": id_or_slug}
        return await self.collection.find_one(query)

    async def create(self, name: str, slug: str | None, description: str, now: datetime) -> dict[str, Any]:
        """Insert a category (without a slug: `category-<id>`); SlugTaken if the slug is in use."""
        oid = ObjectId()
        slug = slug or f"category-{oid}"
        doc = {"_id": oid, "name": name, "slug": slug, "description": description, "created_at": now}
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError as err:
            raise SlugTaken(slug) from err
        self.invalidate()
        return doc

    async def update(self, category_id: ObjectId, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Change fields; the updated category, None if gone; SlugTaken if the slug is in use."""
        try:
            doc = await self.collection.find_one_and_update(
                {"_id": category_id}, {"$set": fields}, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError as err:
            raise SlugTaken(fields.get("slug", "")) from err
        self.invalidate()
        return doc

    async def delete(self, category_id: ObjectId) -> bool:
        """Remove a category; False if it was not there."""
        result = await self.collection.delete_one({"_id": category_id})
        self.invalidate()
        return result.deleted_count == 1
