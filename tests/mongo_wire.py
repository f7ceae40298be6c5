"""A MongoDB wire-protocol server over mongomock, for tests that run several server.py processes on one
database (crash safety, roles, createsuperuser) where no MongoDB server can be installed.

    python -m tests.mongo_wire [--port 0]     # prints "listening on mongodb://127.0.0.1:<port>"

MockupDB (MongoDB's own wire-protocol test server) speaks the protocol; each command is answered from
one shared mongomock client, under one lock. It is not MongoDB: it answers the commands PyMongo sends
for what this application does (find, insert, update, delete, findAndModify, aggregate, count,
distinct, the index commands, drop, ping) with the features mongomock has; a real server is used
instead whenever TEST_MONGODB_URI is set. The handshake announces no sessions and no streaming
monitor, so the driver sends neither.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from typing import Any

import mongomock
from bson import ObjectId
from mockupdb import MockupDB
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

MAX_WIRE_VERSION = 21  # MongoDB 7.0


class Backend:
    """The commands, answered from mongomock."""

    def __init__(self) -> None:
        self.client = mongomock.MongoClient()
        self.lock = threading.Lock()
        self.process_id = ObjectId()

    def handle(self, request: Any) -> bool:
        if not request.is_command:
            return request.fail("only commands are supported", code=59)
        doc = dict(request.doc)
        name = request.command_name
        method = getattr(self, "cmd_" + name.lower(), None)
        if method is None:
            return request.command_err(code=59, errmsg=f"no such command: '{name}'")
        try:
            with self.lock:
                reply = method(self.client[doc.get("$db") or request.namespace or "test"], doc)
        except DuplicateKeyError as err:
            return request.command_err(code=11000, errmsg=str(err))
        except OperationFailure as err:
            return request.command_err(code=err.code or 2, errmsg=str(err))
        except Exception as err:  # anything mongomock cannot do: an error the driver reports
            return request.command_err(code=2, errmsg=f"{type(err).__name__}: {err}")
        return request.ok(reply)

    # --- the handshake and admin commands ---------------------------------------------------------

    def cmd_hello(self, db: Any, doc: dict) -> dict:
        return {
            "ismaster": True,
            "isWritablePrimary": True,
            "helloOk": True,
            "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48_000_000,
            "maxWriteBatchSize": 100_000,
            "localTime": time.time(),
            "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
        }

    cmd_ismaster = cmd_hello

    def cmd_ping(self, db: Any, doc: dict) -> dict:
        return {}

    def cmd_buildinfo(self, db: Any, doc: dict) -> dict:
        return {"version": "7.0.0-mongomock", "versionArray": [7, 0, 0, 0]}

    def cmd_endsessions(self, db: Any, doc: dict) -> dict:
        return {}

    def cmd_killcursors(self, db: Any, doc: dict) -> dict:
        return {"cursorsKilled": doc.get("cursors", [])}

    def cmd_dropdatabase(self, db: Any, doc: dict) -> dict:
        self.client.drop_database(db.name)
        return {}

    def cmd_listcollections(self, db: Any, doc: dict) -> dict:
        names = db.list_collection_names()
        batch = [{"name": name, "type": "collection", "options": {}} for name in names]
        return cursor(db.name + ".$cmd.listCollections", batch)

    # --- reads ----------------------------------------------------------------------------------

    def cmd_find(self, db: Any, doc: dict) -> dict:
        collection = db[doc["find"]]
        found = collection.find(doc.get("filter") or {}, projection=doc.get("projection") or None)
        if doc.get("sort"):
            found = found.sort(list(doc["sort"].items()))
        if doc.get("skip"):
            found = found.skip(doc["skip"])
        if doc.get("limit"):
            found = found.limit(abs(doc["limit"]))
        return cursor(f"{db.name}.{doc['find']}", list(found))

    def cmd_getmore(self, db: Any, doc: dict) -> dict:
        return {"cursor": {"id": 0, "ns": f"{db.name}.{doc['collection']}", "nextBatch": []}}

    def cmd_aggregate(self, db: Any, doc: dict) -> dict:
        results = list(db[doc["aggregate"]].aggregate(doc.get("pipeline") or []))
        return cursor(f"{db.name}.{doc['aggregate']}", results)

    def cmd_count(self, db: Any, doc: dict) -> dict:
        options = {k: doc[k] for k in ("skip", "limit") if doc.get(k)}
        return {"n": db[doc["count"]].count_documents(doc.get("query") or {}, **options)}

    def cmd_distinct(self, db: Any, doc: dict) -> dict:
        return {"values": db[doc["distinct"]].distinct(doc["key"], doc.get("query") or {})}

    # --- writes ---------------------------------------------------------------------------------

    def cmd_insert(self, db: Any, doc: dict) -> dict:
        collection, errors, count = db[doc["insert"]], [], 0
        for index, document in enumerate(doc.get("documents", [])):
            try:
                collection.insert_one(document)
                count += 1
            except DuplicateKeyError as err:
                errors.append({"index": index, "code": 11000, "errmsg": str(err)})
                if doc.get("ordered", True):
                    break
        return {"n": count, **({"writeErrors": errors} if errors else {})}

    def cmd_update(self, db: Any, doc: dict) -> dict:
        collection = db[doc["update"]]
        matched, modified, upserted, errors = 0, 0, [], []
        for index, spec in enumerate(doc.get("updates", [])):
            options = {"upsert": bool(spec.get("upsert"))}
            if spec.get("arrayFilters"):
                options["array_filters"] = spec["arrayFilters"]
            update = spec["u"]
            try:
                if isinstance(update, dict) and not any(key.startswith("$") for key in update):
                    result = collection.replace_one(spec["q"], update, upsert=options["upsert"])
                elif spec.get("multi"):
                    result = collection.update_many(spec["q"], update, **options)
                else:
                    result = collection.update_one(spec["q"], update, **options)
            except DuplicateKeyError as err:
                errors.append({"index": index, "code": 11000, "errmsg": str(err)})
                if doc.get("ordered", True):
                    break
                continue
            if result.upserted_id is not None:
                upserted.append({"index": index, "_id": result.upserted_id})
            else:
                matched += result.matched_count
            modified += result.modified_count
        reply: dict[str, Any] = {"n": matched + len(upserted), "nModified": modified}
        if upserted:
            reply["upserted"] = upserted
        if errors:
            reply["writeErrors"] = errors
        return reply

    def cmd_delete(self, db: Any, doc: dict) -> dict:
        collection, count = db[doc["delete"]], 0
        for spec in doc.get("deletes", []):
            if spec.get("limit") == 1:
                count += collection.delete_one(spec["q"]).deleted_count
            else:
                count += collection.delete_many(spec["q"]).deleted_count
        return {"n": count}

    def cmd_findandmodify(self, db: Any, doc: dict) -> dict:
        collection = db[doc["findAndModify"]]
        query, sort = doc.get("query") or {}, list((doc.get("sort") or {}).items()) or None
        projection = doc.get("fields") or None
        if doc.get("remove"):
            value = collection.find_one_and_delete(query, projection=projection, sort=sort)
            return {"value": value, "lastErrorObject": {"n": int(value is not None)}}
        update, upsert = doc["update"], bool(doc.get("upsert"))
        existed = collection.find_one(query, sort=sort) is not None
        returned = ReturnDocument.AFTER if doc.get("new") else ReturnDocument.BEFORE
        options = {"projection": projection, "sort": sort, "upsert": upsert, "return_document": returned}
        if isinstance(update, dict) and not any(key.startswith("$") for key in update):
            value = collection.find_one_and_replace(query, update, **options)
        else:
            if doc.get("arrayFilters"):
                options["array_filters"] = doc["arrayFilters"]
            value = collection.find_one_and_update(query, update, **options)
        last = {"n": 1 if existed or upsert else 0, "updatedExisting": existed}
        return {"value": value, "lastErrorObject": last}

    # --- indexes and collections ----------------------------------------------------------------

    def cmd_createindexes(self, db: Any, doc: dict) -> dict:
        collection = db[doc["createIndexes"]]
        before = len(collection.index_information())
        for spec in doc.get("indexes", []):
            options = {k: v for k, v in spec.items() if k not in ("key", "v")}
            if "expireAfterSeconds" in options:
                options["expireAfterSeconds"] = int(options["expireAfterSeconds"])
            collection.create_index(list(spec["key"].items()), **options)
        return {"numIndexesBefore": before, "numIndexesAfter": len(collection.index_information())}

    def cmd_listindexes(self, db: Any, doc: dict) -> dict:
        name = doc["listIndexes"]
        indexes = []
        for index_name, info in db[name].index_information().items():
            spec = {"v": 2, "key": dict(info.pop("key")), "name": index_name}
            spec.update({k: v for k, v in info.items() if k != "v"})
            indexes.append(spec)
        return cursor(f"{db.name}.{name}", indexes)

    def cmd_dropindexes(self, db: Any, doc: dict) -> dict:
        collection = db[doc["dropIndexes"]]
        if doc.get("index") == "*":
            collection.drop_indexes()
        else:
            collection.drop_index(doc["index"])
        return {}

    def cmd_drop(self, db: Any, doc: dict) -> dict:
        db.drop_collection(doc["drop"])
        return {}

    def cmd_create(self, db: Any, doc: dict) -> dict:
        db.create_collection(doc["create"])
        return {}


def cursor(namespace: str, batch: list) -> dict:
    """A whole result in the first batch (cursor id 0: nothing to get more of)."""
    return {"cursor": {"id": 0, "ns": namespace, "firstBatch": batch}}


def serve(port: int = 0) -> MockupDB:
    backend = Backend()
    server = MockupDB(port=port, auto_ismaster=False, verbose=False)
    server.autoresponds(backend.handle)
    server.run()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = serve(args.port)
    print(f"listening on mongodb://127.0.0.1:{server.port}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
