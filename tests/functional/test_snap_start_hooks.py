"""SnapStart's runtime hooks, called as Lambda calls them, on the real handler.

Lambda runs the before-snapshot hooks at the end of a published version's init (in reverse order of
registration) and the after-restore hooks in each environment it resumes from that snapshot (in order of
registration): "Lambda SnapStart runtime hooks for Python", https://docs.aws.amazon.com/lambda/latest/dg/
snapstart-runtime-hooks-python.html. Here the snapshot is a fork: each child process starts from the same memory,
as every environment restored from one snapshot does.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import boto3
import numpy as np
import pytest
from snapshot_restore_py import get_after_restore, get_before_snapshot

from tests.functional.conftest import BUCKET, IRIS, Function

pytestmark = pytest.mark.functional

STREAM = "modelrail-capture-snapstart"
ROW = {"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}


class Hooks:
    """The hooks registered since this object was made: what one cold start of the handler registered."""

    def __init__(self) -> None:
        self.before_from = len(get_before_snapshot())
        self.after_from = len(get_after_restore())

    def before_snapshot(self) -> None:
        for func, args, kwargs in reversed(get_before_snapshot()[self.before_from :]):
            func(*args, **kwargs)

    def after_restore(self) -> None:
        for func, args, kwargs in get_after_restore()[self.after_from :]:
            func(*args, **kwargs)


def in_restored_environment(work: Callable[[], Any]) -> Any:
    """``work()``'s JSON-able result, computed in a child that starts from this process's memory (the snapshot)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            os.write(write, json.dumps(work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_environments_restored_from_one_snapshot_sample_differently(s3: Any, deploy: Callable[..., Function]) -> None:
    firehose = boto3.client("firehose", region_name="us-east-1")
    firehose.create_delivery_stream(
        DeliveryStreamName=STREAM,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": "capture/",
        },
    )
    hooks = Hooks()
    function = deploy(IRIS, "iris", CAPTURE_STREAM=STREAM, CAPTURE_SAMPLE_RATE="0.5")
    capture = function.module.service.capture
    assert capture is not None
    # Init traffic of its own (a warm-up): the capture client exists, with a connection. The sampler is seeded from
    # os.urandom, so at a rate of 0.5 the warm-up takes 32 requests: with 4, none was sampled once in 16 runs.
    for _ in range(32):
        assert function.infer(ROW).status == 200
    capture.flush()
    assert capture._client is not None

    hooks.before_snapshot()

    assert capture._client is None  # no connection in the snapshot
    assert function.module.service.model is not None

    def sampling(restore: bool) -> list[bool]:
        if restore:
            hooks.after_restore()
        feeds = {"float_input": np.zeros((1, 4), np.float32)}
        return [capture.offer(None, feeds, {"output_label": np.zeros(1, np.int64)}) for _ in range(64)]

    first, second = (in_restored_environment(lambda: sampling(restore=True)) for _ in range(2))
    assert first != second
    assert 0 < sum(first) < 64
    assert 0 < sum(second) < 64
    # Without the hook, both restored environments take the very same "random" decisions: the failure it prevents.
    assert in_restored_environment(lambda: sampling(restore=False)) == in_restored_environment(
        lambda: sampling(restore=False)
    )


def test_a_load_that_failed_during_init_is_retried_before_the_snapshot(
    s3: Any, deploy: Callable[..., Function]
) -> None:
    sha256 = hashlib.sha256(IRIS.read_bytes()).hexdigest()
    key = f"models/late/{sha256}.onnx"
    hooks = Hooks()
    # The artifact is not there yet during init (uploaded a moment late): the load fails for a cause that may pass.
    function = deploy(IRIS, "iris", uri=f"s3://{BUCKET}/{key}", sha256=sha256)
    assert function.infer(ROW).status == 503
    s3.upload_file(str(IRIS), BUCKET, key)

    hooks.before_snapshot()  # within the backoff: only the hook's own attempt can load it

    assert function.infer(ROW).status == 200
