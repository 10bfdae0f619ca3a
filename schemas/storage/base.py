"""Storage access through fsspec: a local directory by default, ``s3://`` via s3fs.

:class:`Storage` is the filesystem plus the root every layout path is relative
to. It refuses any relative path that would resolve outside the root,
whatever the caller, and writes atomically.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from driftline.schemas.records import Record, RecordError
from driftline.schemas.settings import Settings

RecordT = TypeVar("RecordT", bound=Record)

TEMPORARY_PREFIX = ".tmp-"


class StorageError(RuntimeError):
    """A storage operation that cannot be done; the message names the path."""


class UnreadableFileError(ValueError):
    """An event file whose bytes are not a Parquet file of events; ``reason`` says what is wrong with it."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.reason = reason


class OutsideRootError(StorageError, ValueError):
    """A relative path that would resolve outside the storage root."""


@dataclass(frozen=True)
class Storage:
    """A filesystem plus the root every layout path is relative to."""

    fs: fsspec.AbstractFileSystem
    root: str

    @classmethod
    def from_url(cls, url: str, **storage_options: Any) -> Storage:
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
        if isinstance(fs, LocalFileSystem):
            root = os.path.abspath(root)
            fs.makedirs(root, exist_ok=True)
        return cls(fs=fs, root=root.rstrip("/"))

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        return cls.from_url(settings.storage_url, **settings.storage_options)

    def path(self, relative: str) -> str:
        """The full path of ``relative``; :class:`OutsideRootError` if it would leave the root."""
        normalized = posixpath.normpath("/" + relative.replace("\\", "/")).lstrip("/")
        if normalized != relative.strip("/") or normalized in {"", "."}:
            raise OutsideRootError(
                f"refusing storage path {relative!r}: it must be a plain relative path under {self.root} "
                "(no '..', '.', empty or backslash segments)"
            )
        return f"{self.root}/{normalized}"

    def relative(self, full: str) -> str:
        """The inverse of :meth:`path` for paths returned by listings."""
        prefix = self.root + "/"
        full = full.split("://", 1)[-1] if "://" in full else full
        if not full.startswith(prefix):
            raise OutsideRootError(f"{full!r} is not under the storage root {self.root}")
        return full[len(prefix) :]

    def link(self, relative: str, base_url: str | None = None, *, expires_seconds: int = 7 * 24 * 3600) -> str:
        """A link a person can open: ``base_url`` + the path when the storage is published there (a web server or
        CDN over the bucket); else, on S3, a presigned HTTPS URL valid for ``expires_seconds`` (7 days, S3's
        longest); else :meth:`url` (a local path, which a chat client cannot open)."""
        if base_url:
            return f"{base_url.rstrip('/')}/{self.path(relative)[len(self.root) + 1 :]}"
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        if protocol in {"s3", "s3a"}:
            try:
                return str(self.fs.sign(self.path(relative), expiration=expires_seconds))
            except (NotImplementedError, ValueError, OSError):  # no credentials to sign with
                return self.url(relative)
        return self.url(relative)

    def url(self, relative: str) -> str:
        """A full URL for messages meant for people (``s3://…`` or a local path)."""
        full = self.path(relative)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return full if protocol in {"file", "local"} else f"{protocol}://{full}"

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Write atomically: readers see the old object or the whole new one, never a part.

        Local files go to a temporary name and are renamed; an object store PUT
        is atomic by itself.
        """
        target = self.path(relative)
        parent = target.rsplit("/", 1)[0]
        if isinstance(self.fs, LocalFileSystem):
            os.makedirs(parent, exist_ok=True)
            temporary = f"{parent}/{TEMPORARY_PREFIX}{uuid.uuid4().hex}"
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        else:
            self.fs.pipe_file(target, data)
        return target

    def copy(self, source: str, target: str) -> int:
        """Copy ``source`` to ``target`` without holding the file in memory (a server-side copy on S3; local
        files through a temporary name, renamed); returns its size in bytes."""
        source_path, target_path = self.path(source), self.path(target)
        if isinstance(self.fs, LocalFileSystem):
            parent = target_path.rsplit("/", 1)[0]
            os.makedirs(parent, exist_ok=True)
            temporary = f"{parent}/{TEMPORARY_PREFIX}{uuid.uuid4().hex}"
            self.fs.copy(source_path, temporary)
            os.replace(temporary, target_path)
        else:
            self.fs.copy(source_path, target_path)
        return int(self.fs.size(target_path))

    def create_exclusive(self, relative: str, data: bytes) -> bool:
        """Create ``relative`` with ``data`` unless it exists, atomically across processes and machines; returns
        whether this call created it. Local files use ``O_EXCL``; S3 a conditional PUT (``If-None-Match: *``),
        which AWS S3, MinIO and moto honour."""
        target = self.path(relative)
        if isinstance(self.fs, LocalFileSystem):
            os.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            try:
                handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            return True
        try:
            self.fs.pipe_file(target, data, mode="create")
        except FileExistsError:
            return False
        except Exception as exc:  # botocore's PreconditionFailed (HTTP 412) when s3fs does not translate it
            if "PreconditionFailed" in str(exc) or "412" in str(exc):
                return False
            raise
        return True

    def write_json(self, relative: str, payload: Any) -> str:
        return self.write_bytes(relative, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, relative: str) -> Any:
        return json.loads(self.read_bytes(relative))

    def read_bytes(self, relative: str) -> bytes:
        data: bytes = self.fs.cat_file(self.path(relative))
        return data

    def read_record(self, record_class: type[RecordT], relative: str) -> RecordT:
        """A stored record; a file of another shape is a :class:`StorageError` naming the file and the field."""
        try:
            return record_class.parse(self.read_bytes(relative))
        except RecordError as exc:
            raise StorageError(f"{self.url(relative)}: {exc}") from None

    def glob(self, pattern: str) -> list[str]:
        """Relative paths matching a glob pattern under the root, sorted."""
        names = (self.relative(p) for p in self.fs.glob(self.path(pattern)))
        return sorted(name for name in names if not name.rsplit("/", 1)[-1].startswith(TEMPORARY_PREFIX))

    def exists(self, relative: str) -> bool:
        return bool(self.fs.exists(self.path(relative)))

    def list(self, relative: str) -> list[str]:
        """Relative paths of the files directly under a folder; empty if it does not exist."""
        full = self.path(relative)
        if not self.fs.exists(full):
            return []
        names = (self.relative(p) for p in self.fs.ls(full, detail=False))
        # A crash mid-write can leave a temporary file of write_bytes behind; it is never a stored object.
        return sorted(name for name in names if not name.rsplit("/", 1)[-1].startswith(TEMPORARY_PREFIX))

    def remove(self, relative: str) -> None:
        full = self.path(relative)
        if self.fs.exists(full):
            self.fs.rm(full)
