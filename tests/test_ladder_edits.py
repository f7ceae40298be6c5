"""One edit of a video's manifests at a time, across every process on the database: a subtitle edit
on an api node and an audio or AV1 job on a transcode node each read, change and write the ladder's
presentation record, and neither may lose the other's change."""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId

from core.errors import Locked
from models.locks import Leases
from services import tracks
from services.tracks import LadderTracks


async def test_a_lease_has_one_holder_until_it_is_given_back_or_lapses(db, clock):
    leases = Leases(db)
    assert await leases.take("ladder:1", "api/a", clock(), 60)
    assert await leases.take("ladder:1", "api/a", clock(), 60)  # its holder may take it again
    assert not await leases.take("ladder:1", "transcode/b", clock(), 60)
    await leases.give_back("ladder:1", "transcode/b")  # not the holder: nothing happens
    assert not await leases.take("ladder:1", "transcode/b", clock(), 60)
    await leases.give_back("ladder:1", "api/a")
    assert await leases.take("ladder:1", "transcode/b", clock(), 60)
    clock.advance(seconds=61)  # its holder died: the lease lapses and another takes it over
    assert await leases.take("ladder:1", "api/c", clock(), 60)


async def test_edits_of_one_video_from_two_nodes_never_overlap_so_none_is_lost(db, clock):
    api_node = LadderTracks(None, None, clock, Leases(db), "api")  # type: ignore[arg-type]
    transcode_node = LadderTracks(None, None, clock, Leases(db), "transcode")  # type: ignore[arg-type]
    video_id = ObjectId()
    record = {"tracks": []}  # the presentation record both read, change and write

    async def add(node: LadderTracks, name: str) -> None:
        async with node.editing(video_id):
            seen = list(record["tracks"])
            await asyncio.sleep(0.05)  # the read-change-write takes a while
            record["tracks"] = [*seen, name]

    await asyncio.gather(*(add(node, f"{n}-{i}") for i in range(3) for n, node in
                           (("api", api_node), ("transcode", transcode_node))))  # fmt: skip
    assert sorted(record["tracks"]) == sorted(f"{n}-{i}" for i in range(3) for n in ("api", "transcode"))
    # and the lease is given back after each edit
    assert await db.db["locks"].count_documents({}) == 0


async def test_an_edit_that_waits_too_long_for_another_is_told_to_try_again(db, clock, monkeypatch):
    monkeypatch.setattr(tracks, "EDIT_WAIT_S", 0.3)
    first = LadderTracks(None, None, clock, Leases(db), "api")  # type: ignore[arg-type]
    second = LadderTracks(None, None, clock, Leases(db), "transcode")  # type: ignore[arg-type]
    video_id = ObjectId()
    async with first.editing(video_id):
        with pytest.raises(Locked, match="try again shortly"):
            async with second.editing(video_id):
                pass
    async with second.editing(video_id):  # free again once the first is done
        pass
