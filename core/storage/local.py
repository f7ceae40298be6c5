"""The local store: MEDIA_ROOT on disk, as the single box has always run."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterable, AsyncIterator, Collection
from pathlib import Path
from typing import Any

from core.storage.base import (
    ObjectMissing,
    StorageBackend,
    StorageUnavailable,
    check_key,
    check_prefix,
    file_chunks,
    files_below,
)

LOCAL_CHUNK = 1024 * 1024  # bytes read at a time when a local file is copied into the store


class LocalStorage(StorageBackend):
    """Objects are files below `root`; writes go to a hidden temporary name and are renamed in place."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def local_path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def _run(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        path = self.local_path(key)
        tmp = path.with_name(f".{path.name}.part-{secrets.token_hex(4)}")
        size = 0
        try:
            await self._write(key, lambda: path.parent.mkdir(parents=True, exist_ok=True))
            with open(tmp, "wb") as file:
                async for chunk in chunks:
                    await self._write(key, file.write, chunk)
                    size += len(chunk)
            await self._write(key, os.replace, tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return size

    async def _write(self, key: str, func: Any, *args: Any) -> Any:
        try:
            return await self._run(func, *args)
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise StorageUnavailable(f"Could not write {key} to the media folder: {reason}.") from None

    async def download(self, key: str, dest: Path) -> Path:
        source = self.local_path(key)
        if source.resolve() == dest.resolve():
            return dest
        try:
            await self._run(copy_into, source, dest)
        except OSError as err:
            raise StorageUnavailable(f"Could not read {key} from the media folder: {err.strerror}.") from err
        return dest

    async def upload_folder(self, folder: Path, prefix: str, skip: Collection[str] = ()) -> list[str]:
        target = self.local_path(check_prefix(prefix).rstrip("/"))
        keys = [check_prefix(prefix) + rel for _, rel in files_below(folder)]
        if folder.resolve() == target.resolve():
            return keys  # already in place (the transcoder wrote below MEDIA_ROOT)
        tmp = target.with_name(f".{target.name}.part-{secrets.token_hex(4)}")

        def copy() -> None:
            try:
                shutil.copytree(folder, tmp, symlinks=False)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

        try:
            await self._run(copy)
        except OSError as err:
            raise StorageUnavailable(
                f"Could not write {prefix} to the media folder: {err.strerror}."
            ) from err
        return keys

    async def put_file(self, path: Path, key: str) -> None:
        if self.local_path(key).resolve() != path.resolve():
            await self.put_stream(key, file_chunks(path, LOCAL_CHUNK))

    async def put_bytes(self, key: str, data: bytes) -> None:
        async def whole() -> AsyncIterator[bytes]:
            yield data

        await self.put_stream(key, whole())

    async def delete_prefix(self, prefix: str) -> int:
        target = self.local_path(check_prefix(prefix).rstrip("/"))
        count = len(files_below(target)) if target.is_dir() else 0
        await self._run(lambda: shutil.rmtree(target, ignore_errors=True))
        return count

    async def exists(self, key: str) -> bool:
        return self.local_path(key).is_file()

    async def read_bytes(self, key: str) -> bytes:
        try:
            data: bytes = await self._run(self.local_path(key).read_bytes)
            return data
        except FileNotFoundError as err:
            raise ObjectMissing() from err
        except OSError as err:
            raise StorageUnavailable(f"Could not read {key} from the media folder: {err.strerror}.") from err

    # --- parts: numbered files in a hidden folder beside the object, joined in order at the end ----

    def _parts_dir(self, key: str, upload_id: str) -> Path:
        path = self.local_path(key)
        return path.with_name(f".{path.name}.parts-{check_key(upload_id)}")

    async def begin_parts(self, key: str) -> str:
        upload_id = secrets.token_hex(8)
        await self._write(key, lambda: self._parts_dir(key, upload_id).mkdir(parents=True))
        return upload_id

    async def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        part = self._parts_dir(key, upload_id) / f"{number:05d}"
        await self._write(key, part.write_bytes, data)
        return {"PartNumber": number, "Size": len(data)}

    async def complete_parts(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        folder = self._parts_dir(key, upload_id)

        async def joined() -> AsyncIterator[bytes]:
            for part in sorted(parts, key=lambda p: p["PartNumber"]):
                yield await self._run((folder / f"{part['PartNumber']:05d}").read_bytes)

        await self.put_stream(key, joined())
        await self._run(lambda: shutil.rmtree(folder, ignore_errors=True))

    async def abort_parts(self, key: str, upload_id: str) -> None:
        folder = self._parts_dir(key, upload_id)
        await self._run(lambda: shutil.rmtree(folder, ignore_errors=True))

    async def list_keys(self, prefix: str) -> list[str]:
        base = check_prefix(prefix)
        target = self.local_path(base.rstrip("/"))
        return [base + rel for _, rel in files_below(target)] if target.is_dir() else []


def copy_into(source: Path, dest: Path) -> None:
    """Blocking: copy a file, making the folder it goes in."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
