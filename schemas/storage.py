"""Storage access through fsspec: a local directory by default, ``s3://`` via s3fs."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from driftline.schemas import layout
from driftline.schemas.settings import Settings


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
        return layout.join(self.root, relative)

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
            temporary = f"{parent}/.tmp-{uuid.uuid4().hex}"
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        else:
            self.fs.pipe_file(target, data)
        return target

    def write_json(self, relative: str, payload: Any) -> str:
        return self.write_bytes(relative, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, relative: str) -> Any:
        return json.loads(self.fs.cat_file(self.path(relative)))

    def exists(self, relative: str) -> bool:
        return self.fs.exists(self.path(relative))

    def list(self, relative: str) -> list[str]:
        """Relative paths of the files directly under a folder; empty if it does not exist."""
        full = self.path(relative)
        if not self.fs.exists(full):
            return []
        prefix = self.root + "/"
        return sorted(p[len(prefix) :] if p.startswith(prefix) else p for p in self.fs.ls(full, detail=False))

    def remove(self, relative: str) -> None:
        full = self.path(relative)
        if self.fs.exists(full):
            self.fs.rm(full)
