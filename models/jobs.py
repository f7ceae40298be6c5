"""The `jobs` collection: every background job (transcodes, mails, ...) as one document, under a lease.

A process claims a due job atomically and renews its lease while it works; if the process dies the lease
runs out and any process takes the job over, or at once the same node once it restarts (a new boot id).
Two processes never hold one job at once: every settling write matches the holder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError

from models.db import Database, aggregate, object_id, upserted

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
LIVE = (QUEUED, RUNNING)

INDEXES = [
    # One live job per key (e.g. one transcode per video); mails have no key.
    IndexModel([("key", ASCENDING)], unique=True, sparse=True, name="key_unique"),
    IndexModel([("state", ASCENDING), ("run_after", ASCENDING)], name="state_run_after"),
    IndexModel([("state", ASCENDING), ("lease_until", ASCENDING)], name="state_lease"),
    IndexModel([("type", ASCENDING), ("state", ASCENDING), ("_id", DESCENDING)], name="type_state_newest"),
]
# Indexes of earlier versions that the new documents would break.
LEGACY_INDEXES = ("video_id_unique", "status_run_after", "status_lease")


@dataclass(frozen=True)
class Job:
    """A job as the services hand it out: what, where it stands, who holds it, and when things happened.
    Its payload is the document's, whole (a mail's carries its bodies): the reply decides what is shown."""

    id: str
    type: str | None
    state: str | None
    payload: dict[str, Any]
    attempts: int
    max_attempts: int | None
    progress: float
    last_error: str | None
    owner: str | None
    lease_until: datetime | None
    queued_at: datetime | None
    run_after: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Job:
        """Map a `jobs` document to a Job (documents of every version: fields may be missing)."""
        return cls(
            id=str(doc["_id"]),
            type=doc.get("type"),
            state=doc.get("state"),
            payload=dict(doc.get("payload") or {}),
            attempts=doc.get("attempts", 0),
            max_attempts=doc.get("max_attempts"),
            progress=doc.get("progress", 0),
            last_error=doc.get("last_error"),
            owner=doc.get("owner"),
            lease_until=doc.get("lease_until"),
            queued_at=doc.get("queued_at"),
            run_after=doc.get("run_after"),
            started_at=doc.get("started_at"),
            finished_at=doc.get("finished_at"),
        )


class Jobs:
    """Queries on the `jobs` collection."""

    def __init__(self, db: Database) -> None:
        self.collection = db.jobs

    async def enqueue(
        self,
        type_: str,
        payload: dict[str, Any],
        now: datetime,
        *,
        key: str | None = None,
        max_attempts: int,
        only_node: str | None = None,
    ) -> ObjectId:
        """Queue a job; with a key, (re-)queue the one job of that key with its attempts counted afresh.
        With `only_node`, only that node claims it (it needs files that node holds)."""
        fields: dict[str, Any] = {
            "only_node": only_node,
            "type": type_,
            "payload": payload,
            "state": QUEUED,
            "attempts": 0,
            "max_attempts": max_attempts,
            "progress": 0,
            "run_after": now,
            "queued_at": now,
            "started_at": None,
            "finished_at": None,
            "lease_until": None,
            "owner": None,
            "last_error": None,
        }
        if key is None:
            inserted: ObjectId = (await self.collection.insert_one(fields)).inserted_id
            return inserted
        for _ in range(2):  # a concurrent upsert of the same key makes the first try a duplicate
            try:
                doc = await self.collection.find_one_and_update(
                    {"key": key},
                    {"$set": fields},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                job_id: ObjectId = upserted(doc)["_id"]
                return job_id
            except DuplicateKeyError:
                continue
        raise RuntimeError(f"could not queue job {key}")

    async def get(self, job_id: str | ObjectId) -> dict[str, Any] | None:
        """One job by id; None for an unknown or malformed id."""
        oid = job_id if isinstance(job_id, ObjectId) else object_id(job_id)
        return await self.collection.find_one({"_id": oid}) if oid else None

    async def by_key(self, key: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"key": key})

    async def live_keys(self, keys: list[str]) -> set[str]:
        """Which of these keys have a queued or running job."""
        docs = await self.collection.find(
            {"key": {"$in": keys}, "state": {"$in": list(LIVE)}}, {"key": 1}
        ).to_list(None)
        return {doc["key"] for doc in docs}

    async def claim(
        self, types: Iterable[str], owner: str, node: str, now: datetime, lease_s: float
    ) -> dict[str, Any] | None:
        """Take one due job of these types: queued and due, or running under an expired lease, or
        running under this node's previous life (its owner names this node but another boot); never a
        job kept for another node."""
        return await self.collection.find_one_and_update(
            {
                "type": {"$in": list(types)},
                "only_node": {"$in": [None, node]},
                "$or": [
                    {"state": QUEUED, "run_after": {"$lte": now}},
                    {"state": RUNNING, "lease_until": {"$lte": now}},
                    {"state": RUNNING, "node": node, "owner": {"$ne": owner}},
                ],
            },
            {
                "$set": {
                    "state": RUNNING,
                    "owner": owner,
                    "node": node,
                    "started_at": now,
                    "lease_until": now + timedelta(seconds=lease_s),
                },
                "$inc": {"attempts": 1},
            },
            sort=[("run_after", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def renew(self, job_id: ObjectId, owner: str, now: datetime, lease_s: float) -> bool:
        """Extend the lease; False when the job is gone, cancelled or held by another process."""
        result = await self.collection.update_one(
            {"_id": job_id, "owner": owner, "state": RUNNING},
            {"$set": {"lease_until": now + timedelta(seconds=lease_s)}},
        )
        return result.matched_count == 1

    async def set_progress(self, job_id: ObjectId, owner: str, percent: int) -> None:
        await self.collection.update_one({"_id": job_id, "owner": owner}, {"$set": {"progress": percent}})

    async def _settle(
        self,
        job_id: ObjectId,
        owner: str,
        fields: dict[str, Any],
        *,
        inc: dict[str, int] | None = None,
        unset: Iterable[str] = (),
    ) -> bool:
        update: dict[str, Any] = {"$set": {"lease_until": None, "owner": None, **fields}}
        if inc:
            update["$inc"] = inc
        if unset:
            update["$unset"] = {name: "" for name in unset}
        result = await self.collection.update_one({"_id": job_id, "owner": owner, "state": RUNNING}, update)
        return result.matched_count == 1

    async def finish(self, job_id: ObjectId, owner: str, now: datetime, unset: Iterable[str] = ()) -> bool:
        """Done (False if it is no longer ours); `unset` drops payload fields that must not be kept."""
        fields = {"state": DONE, "finished_at": now, "last_error": None, "progress": 100}
        return await self._settle(job_id, owner, fields, unset=unset)

    async def retry_later(self, job_id: ObjectId, owner: str, when: datetime, error: str) -> bool:
        """A transient failure: run again at `when`."""
        return await self._settle(job_id, owner, {"state": QUEUED, "run_after": when, "last_error": error})

    async def fail(self, job_id: ObjectId, owner: str, now: datetime, error: str) -> bool:
        """Failed for good, with the reason."""
        return await self._settle(job_id, owner, {"state": FAILED, "finished_at": now, "last_error": error})

    async def hand_back(self, job_id: ObjectId, owner: str, now: datetime) -> bool:
        """Stopped by a shutdown: queued again at once, the attempt not counted."""
        return await self._settle(
            job_id, owner, {"state": QUEUED, "run_after": now, "progress": 0}, inc={"attempts": -1}
        )

    async def requeue(self, job_id: ObjectId, now: datetime) -> dict[str, Any] | None:
        """Queue a job that ended (failed, cancelled or done) again, its attempts counted afresh."""
        return await self.collection.find_one_and_update(
            {"_id": job_id, "state": {"$in": [FAILED, CANCELLED, DONE]}},
            {
                "$set": {
                    "state": QUEUED,
                    "attempts": 0,
                    "progress": 0,
                    "run_after": now,
                    "queued_at": now,
                    "finished_at": None,
                    "last_error": None,
                }
            },
            return_document=ReturnDocument.AFTER,
        )

    async def cancel(self, job_id: ObjectId, now: datetime) -> dict[str, Any] | None:
        """Stop a live job: its holder notices at the next renewal. None when it was not live."""
        return await self.collection.find_one_and_update(
            {"_id": job_id, "state": {"$in": list(LIVE)}},
            {
                "$set": {
                    "state": CANCELLED,
                    "finished_at": now,
                    "owner": None,
                    "lease_until": None,
                    "last_error": "Cancelled by staff.",
                }
            },
            return_document=ReturnDocument.AFTER,
        )

    async def delete_key(self, key: str) -> None:
        """Forget the job of a key (its subject was deleted): its holder notices at the next renewal."""
        await self.collection.delete_one({"key": key})

    async def delete(self, job_id: ObjectId) -> None:
        await self.collection.delete_one({"_id": job_id})

    async def page(
        self, *, state: str | None, types: Iterable[str] | None, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Jobs newest first, filtered by state and type, and how many match."""
        query: dict[str, Any] = {}
        if state:
            query["state"] = state
        if types is not None:
            query["type"] = {"$in": list(types)}
        count = await self.collection.count_documents(query)
        cursor = self.collection.find(query).sort([("_id", DESCENDING)]).skip(offset).limit(limit)
        return await cursor.to_list(None), count

    async def counts(self) -> dict[tuple[str, str], int]:
        """How many jobs of each (type, state): the queue's depth, for metrics."""
        rows = await aggregate(
            self.collection, [{"$group": {"_id": {"type": "$type", "state": "$state"}, "n": {"$sum": 1}}}]
        )
        return {(row["_id"]["type"], row["_id"]["state"]): row["n"] for row in rows}

    async def purge_finished(self, before: datetime) -> int:
        """Forget done jobs that finished before `before` (failed and cancelled ones stay for staff)."""
        result = await self.collection.delete_many({"state": DONE, "finished_at": {"$lt": before}})
        return result.deleted_count


async def migrate_legacy(db: Database) -> int:
    """Bring jobs of the first version (one transcode per video, `status`) into the common shape."""
    existing = await db.jobs.index_information()
    for name in LEGACY_INDEXES:
        if name in existing:
            await db.jobs.drop_index(name)
    migrated = 0
    async for doc in db.jobs.find({"type": {"$exists": False}, "video_id": {"$exists": True}}):
        await db.jobs.update_one(
            {"_id": doc["_id"]},
            {
                "$set": {
                    "type": "transcode",
                    "key": f"transcode:{doc['video_id']}",
                    "payload": {"video_id": doc["video_id"]},
                    "state": doc.get("status", QUEUED),
                    "max_attempts": doc.get("max_attempts", 3),
                },
                "$unset": {"status": "", "video_id": ""},
            },
        )
        migrated += 1
    return migrated
