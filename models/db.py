"""Opening the database: the one place that turns a URI into a client."""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConfigurationError, InvalidURI, PyMongoError
from pymongo.uri_parser import parse_uri

log = logging.getLogger("videoflix.db")

MEMORY_URI = "memory://"

# A collection as the models use it: PyMongo's async API (mongomock-motor's in-memory one speaks it too).
Collection = AsyncCollection[dict[str, Any]]


class DatabaseUnavailable(Exception):
    """MongoDB could not be reached or the URI is unusable; the message names the host, never a password."""


@dataclass
class Database:
    """An open database and the client behind it."""

    client: Any
    db: Any
    in_memory: bool

    def __getattr__(self, name: str) -> Collection:
        # Collections read as attributes: database.users, database.videos, ...
        collection: Collection = getattr(self.db, name)
        return collection

    async def ping(self) -> bool:
        """True when the server answers."""
        try:
            await self.db.command("ping")
        except (PyMongoError, OSError):
            return False
        return True

    async def close(self) -> None:
        """Close the client (PyMongo's async client closes with an await; the in-memory one at once)."""
        result = self.client.close()
        if inspect.isawaitable(result):
            await result


def hosts_of(uri: str) -> str:
    """The host list of a URI, for messages: never the user name or password."""
    try:
        nodes = parse_uri(uri, validate=False, warn=True)["nodelist"]
    except (InvalidURI, ConfigurationError, ValueError):
        return "the configured MONGODB_URI"
    return ",".join(f"{host}:{port}" for host, port in nodes) or "the configured MONGODB_URI"


def open_memory_database(name: str) -> Database:
    """An in-process MongoDB (mongomock-motor): forgotten on exit."""
    from mongomock_motor import AsyncMongoMockClient

    client: Any = AsyncMongoMockClient(tz_aware=True)
    return Database(client=client, db=client[name], in_memory=True)


async def open_database(uri: str, name: str, timeout_s: float) -> Database:
    """Open the database at `uri` and check that it answers within `timeout_s` seconds."""
    if uri == MEMORY_URI:
        return open_memory_database(name)
    where = hosts_of(uri)
    try:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri,
            serverSelectionTimeoutMS=int(timeout_s * 1000),
            connectTimeoutMS=int(timeout_s * 1000),
            tz_aware=True,
        )
    except (ConfigurationError, InvalidURI, ValueError) as err:
        raise DatabaseUnavailable(f"MONGODB_URI for {where} is not usable: {err}") from err
    database = Database(client=client, db=client.get_default_database(name), in_memory=False)
    try:
        await asyncio.wait_for(database.db.command("ping"), timeout_s + 1)
    except (TimeoutError, PyMongoError, OSError) as err:
        await database.close()
        raise DatabaseUnavailable(
            f"cannot reach MongoDB at {where} within {timeout_s:g} s; check MONGODB_URI"
        ) from err
    return database


async def aggregate(collection: Any, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every document an aggregation answers. PyMongo's async driver gives the cursor from a coroutine;
    mongomock-motor (the in-memory database) gives it at once."""
    cursor = collection.aggregate(pipeline)
    if inspect.isawaitable(cursor):
        cursor = await cursor
    docs: list[dict[str, Any]] = await cursor.to_list(None)
    return docs


def upserted(doc: dict[str, Any] | None) -> dict[str, Any]:
    """The document an upsert answered with ReturnDocument.AFTER: there always is one."""
    if doc is None:
        raise RuntimeError("an upsert answered no document")
    return doc


def object_id(value: str) -> ObjectId | None:
    """The ObjectId a string names, or None when it names none (callers answer 404)."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None
