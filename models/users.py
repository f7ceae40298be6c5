"""Users: documents in the `users` collection and the queries on them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from core.clock import isoformat
from models.db import Database, object_id

SEARCHED = ("email_lower", "first_name", "last_name")

INDEXES = [
    IndexModel([("email_lower", ASCENDING)], unique=True, name="email_lower_unique"),  # what look-ups use
    IndexModel([("email", ASCENDING)], unique=True, name="email_unique"),  # as admins expect to find it
]


@dataclass
class User:
    """A user as the server sees it; `password` is the bcrypt hash, never the password."""

    id: str
    email: str
    first_name: str
    last_name: str
    password: str | None
    is_verified: bool
    is_active: bool
    is_staff: bool
    created_at: datetime
    last_login: datetime | None = None
    # The credentials epoch: moves on every signup again, logout, password change or reset and
    # deactivation. Tokens, stream grants and codes name the epoch they were made in and die with it.
    epoch: int = 0

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> User:
        """Map a MongoDB document to a User."""
        return cls(
            id=str(doc["_id"]),
            email=doc["email"],
            first_name=doc.get("first_name", ""),
            last_name=doc.get("last_name", ""),
            password=doc.get("password"),
            is_verified=bool(doc.get("is_verified", False)),
            is_active=bool(doc.get("is_active", True)),
            is_staff=bool(doc.get("is_staff", False)),
            created_at=doc.get("created_at") or ObjectId(doc["_id"]).generation_time,
            last_login=doc.get("last_login"),
            epoch=int(doc.get("epoch", 0)),
        )

    def to_api(self) -> dict[str, Any]:
        """The fields `users/me/` shows."""
        return {
            "id": self.id,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "is_staff": self.is_staff,
        }

    def to_admin_api(self) -> dict[str, Any]:
        """What staff see of a user: its flags and dates too, never the password hash."""
        return {
            **self.to_api(),
            "is_active": self.is_active,
            "is_verified": self.is_verified,
            "created_at": isoformat(self.created_at),
            "last_login": isoformat(self.last_login),
        }


def at_epoch(epoch: int) -> dict[str, Any]:
    """A match for users still in this credentials epoch (documents from before epochs count as 0)."""
    return {"epoch": {"$in": [0, None]}} if epoch == 0 else {"epoch": epoch}


def normalise(email: str) -> str:
    """The form e-mails are compared in: case-insensitive."""
    return email.strip().lower()


class Users:
    """Queries on the `users` collection."""

    def __init__(self, db: Database) -> None:
        self.collection = db.users

    async def get(self, user_id: str | ObjectId) -> User | None:
        """The user with this id, or None."""
        oid = user_id if isinstance(user_id, ObjectId) else object_id(user_id)
        if oid is None:
            return None
        doc = await self.collection.find_one({"_id": oid})
        return User.from_doc(doc) if doc else None

    async def by_email(self, email: str) -> User | None:
        """The user with this e-mail (any case), or None."""
        doc = await self.collection.find_one({"email_lower": normalise(email)})
        return User.from_doc(doc) if doc else None

    async def create(
        self,
        email: str,
        password_hash: str,
        now: datetime,
        *,
        first_name: str = "",
        last_name: str = "",
        is_verified: bool = False,
        is_staff: bool = False,
    ) -> User | None:
        """Insert a user; None when the e-mail is taken (the unique index decides races)."""
        doc = {
            "email": email.strip(),
            "email_lower": normalise(email),
            "first_name": first_name,
            "last_name": last_name,
            "password": password_hash,
            "is_verified": is_verified,
            "is_active": True,
            "is_staff": is_staff,
            "created_at": now,
            "last_login": None,
            "epoch": 0,
        }
        try:
            result = await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return None
        doc["_id"] = result.inserted_id
        return User.from_doc(doc)

    async def update(
        self, user_id: str, match: dict[str, Any] | None = None, *, new_epoch: bool = False, **fields: Any
    ) -> User | None:
        """Set fields on a user (only if it still matches `match`); the updated user, or None.

        `new_epoch` moves the credentials epoch in the same write, ending every token and grant
        made before it.
        """
        if "email" in fields:
            fields["email_lower"] = normalise(fields["email"])
        change: dict[str, Any] = {"$set": fields} if fields else {}
        if new_epoch:
            change["$inc"] = {"epoch": 1}
        doc = await self.collection.find_one_and_update(
            {"_id": ObjectId(user_id), **(match or {})},
            change,
            return_document=ReturnDocument.AFTER,
        )
        return User.from_doc(doc) if doc else None

    async def change_email(self, user_id: str, old_email: str, new_email: str) -> User | None:
        """Move a user to a new address if it still has the old one; None if not, or if taken."""
        try:
            return await self.update(user_id, {"email": old_email}, email=new_email.strip())
        except DuplicateKeyError:
            return None

    async def page(self, search: tuple[str, ...], offset: int, limit: int) -> tuple[list[User], int]:
        """Users by e-mail, each search word found in the e-mail or a name (any case)."""
        clauses = [
            {"$or": [{f: {"$regex": re.escape(word), "$options": "i"}} for f in SEARCHED]} for word in search
        ]
        query = {"$and": clauses} if clauses else {}
        count = await self.collection.count_documents(query)
        cursor = self.collection.find(query).sort([("email_lower", ASCENDING)]).skip(offset).limit(limit)
        return [User.from_doc(doc) for doc in await cursor.to_list(None)], count

    async def delete_unverified(self, user_id: str) -> None:
        """Remove a user that never verified its address (and so never logged in)."""
        await self.collection.delete_one({"_id": ObjectId(user_id), "is_verified": False})

    async def delete(self, user_id: str) -> bool:
        """Remove a user for good (staff); True when there was one."""
        oid = object_id(user_id)
        if oid is None:
            return False
        result = await self.collection.delete_one({"_id": oid})
        return bool(result.deleted_count == 1)
