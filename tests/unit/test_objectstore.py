"""The embedded broker's object store, driven by a real S3 client (boto3).

It serves exactly what Tansu's object_store client uses; each behaviour Tansu
relies on is checked here the way an S3 client sees it, including that an
acknowledged write survives a SIGKILL of the server.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from pipeline.embedded.broker import free_port, wait_for_port


def start(root: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline.embedded.objectstore",
            "--root",
            str(root),
            "--port",
            str(port),
        ]
    )
    wait_for_port(port, 30, process, "object store")
    return process


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Any, Path, int, list[subprocess.Popen[bytes]]]]:
    port = free_port()
    processes = [start(tmp_path, port)]
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    client.create_bucket(Bucket="b")
    yield client, tmp_path, port, processes
    for process in processes:
        process.kill()
        process.wait()


def status(error: ClientError) -> int:
    return int(error.response["ResponseMetadata"]["HTTPStatusCode"])


def test_conditional_writes_are_compare_and_swap(store: Any) -> None:
    client, *_ = store
    first = client.put_object(Bucket="b", Key="meta/watermark", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as exists:
        client.put_object(Bucket="b", Key="meta/watermark", Body=b"2", IfNoneMatch="*")
    assert status(exists.value) == 412
    second = client.put_object(Bucket="b", Key="meta/watermark", Body=b"2", IfMatch=first["ETag"])
    assert second["ETag"] != first["ETag"]
    # The same content written again still gets a new ETag: no ABA for a stale writer.
    third = client.put_object(Bucket="b", Key="meta/watermark", Body=b"2")
    assert third["ETag"] != second["ETag"]
    with pytest.raises(ClientError) as stale:
        client.put_object(Bucket="b", Key="meta/watermark", Body=b"3", IfMatch=second["ETag"])
    assert status(stale.value) == 412
    got = client.get_object(Bucket="b", Key="meta/watermark")
    assert got["Body"].read() == b"2" and got["ETag"] == third["ETag"]


def test_get_head_range_and_missing(store: Any) -> None:
    client, *_ = store
    client.put_object(Bucket="b", Key="t/p/0001.batch", Body=b"0123456789")
    assert client.head_object(Bucket="b", Key="t/p/0001.batch")["ContentLength"] == 10
    ranged = client.get_object(Bucket="b", Key="t/p/0001.batch", Range="bytes=2-5")
    assert ranged["Body"].read() == b"2345"
    with pytest.raises(ClientError) as missing:
        client.get_object(Bucket="b", Key="t/p/none")
    assert status(missing.value) == 404


def test_listing_by_prefix_delimiter_and_pages(store: Any) -> None:
    client, *_ = store
    keys = [f"topics/a/partitions/{p}/records/{o:04d}.batch" for p in (0, 1) for o in range(3)]
    keys.append("topics/b/meta.json")
    for key in keys:
        client.put_object(Bucket="b", Key=key, Body=b"x")
    paginator = client.get_paginator("list_objects_v2")
    listed = [
        item["Key"]
        for page in paginator.paginate(
            Bucket="b", Prefix="topics/a/", PaginationConfig={"PageSize": 2}
        )
        for item in page.get("Contents", [])
    ]
    assert listed == sorted(k for k in keys if k.startswith("topics/a/"))
    top = client.list_objects_v2(Bucket="b", Prefix="topics/", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["topics/a/", "topics/b/"]
    assert "Contents" not in top


def test_delete_objects_removes_them(store: Any) -> None:
    client, *_ = store
    for key in ("x/1", "x/2", "y/1"):
        client.put_object(Bucket="b", Key=key, Body=b"x")
    result = client.delete_objects(
        Bucket="b", Delete={"Objects": [{"Key": "x/1"}, {"Key": "x/2"}], "Quiet": False}
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == ["x/1", "x/2"]
    assert [o["Key"] for o in client.list_objects_v2(Bucket="b")["Contents"]] == ["y/1"]


def test_an_acknowledged_write_survives_a_sigkill(store: Any) -> None:
    client, root, port, processes = store
    client.put_object(Bucket="b", Key="log/0001.batch", Body=b"acked")
    processes[0].kill()  # SIGKILL right after the acknowledgement
    processes[0].wait()
    processes.append(start(root, port))
    assert client.get_object(Bucket="b", Key="log/0001.batch")["Body"].read() == b"acked"


def test_a_key_that_would_leave_the_root_is_refused(store: Any) -> None:
    client, *_ = store
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket="b", Key="a/../../outside", Body=b"x")
    assert status(refused.value) == 400
