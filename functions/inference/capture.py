"""DataCapture: a sample of successful requests and their answers, sent to Amazon Data Firehose.

Firehose delivers them to S3 as gzip JSON lines partitioned by model, version and hour, for the drift
monitor. Capture never slows or fails a request: records wait in a bounded buffer, a background thread sends
them in batches, and whatever cannot be buffered or sent is dropped and counted (CaptureDropped). Requests
that failed on a client's bad input are never captured, and inputs named in CAPTURE_EXCLUDE_INPUTS (personal
data) are left out of every record.
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
import orjson

from .protocol import encode_output

MAX_RECORD_BYTES = 1000 * 1024  # Firehose's limit for one record
MAX_BATCH_RECORDS = 500  # PutRecordBatch's limits
MAX_BATCH_BYTES = 4 * 1024 * 1024


class DataCapture:
    _live: ClassVar[weakref.WeakSet[DataCapture]] = weakref.WeakSet()

    def __init__(
        self,
        stream: str,
        *,
        model: str,
        version: str,
        sample_rate: float,
        exclude_inputs: Iterable[str] = (),
        max_buffered: int = 1000,
        flush_records: int = 100,
        flush_seconds: float = 10.0,
        client_factory: Callable[[], Any] | None = None,
        seed: int | None = None,
    ) -> None:
        self.stream = stream
        self.model = model
        self.version = version
        self.sample_rate = sample_rate
        self.exclude_inputs = frozenset(exclude_inputs)
        self.max_buffered = max_buffered
        self.flush_records = flush_records
        self.flush_seconds = flush_seconds
        self._client_factory = client_factory or _firehose
        self._client: Any = None
        self._random = random.Random(seed)
        self._buffer: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._sending: threading.Thread | None = None
        self._oldest = 0.0
        self.captured = 0
        self.dropped = 0
        DataCapture._live.add(self)

    @classmethod
    def flush_all(cls) -> None:
        """Send what every capture of this process buffered: an execution environment about to stop (the local
        worker, when ``serve --capture`` ends) would otherwise lose up to ``flush_seconds`` of records."""
        for capture in list(cls._live):
            capture.wait()
            capture.flush()

    def offer(self, request_id: str | None, feeds: dict[str, np.ndarray], results: dict[str, Any]) -> bool:
        """Maybe capture one answered request (sampled); True if it was buffered."""
        if self._random.random() >= self.sample_rate:
            return False
        try:
            record = {
                "model": self.model,
                "version": self.version,
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "request_id": request_id,
                "inputs": [encode_output(n, a) for n, a in feeds.items() if n not in self.exclude_inputs],
                "outputs": [encode_output(n, v) for n, v in results.items()],
                "excluded": sorted(self.exclude_inputs & feeds.keys()),
            }
            line = orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS) + b"\n"
        except Exception:  # an output capture cannot encode is dropped and counted, never raised
            with self._lock:
                self.dropped += 1
            return False
        with self._lock:
            if len(line) > MAX_RECORD_BYTES or len(self._buffer) >= self.max_buffered:
                self.dropped += 1
                return False
            if not self._buffer:
                self._oldest = time.monotonic()
            self._buffer.append(line)
            due = len(self._buffer) >= self.flush_records or time.monotonic() - self._oldest >= self.flush_seconds
        if due:
            self.flush_in_background()
        return True

    def flush_in_background(self) -> None:
        with self._lock:
            if self._sending is not None and self._sending.is_alive():
                return
            self._sending = threading.Thread(target=self.flush, name="data-capture", daemon=True)
            self._sending.start()

    def flush(self) -> None:
        """Send everything buffered now; failures are counted as dropped, never raised."""
        while True:
            with self._lock:
                batch: list[bytes] = []
                size = 0
                while (
                    self._buffer and len(batch) < MAX_BATCH_RECORDS and size + len(self._buffer[0]) <= MAX_BATCH_BYTES
                ):
                    size += len(self._buffer[0])
                    batch.append(self._buffer.popleft())
                if self._buffer:
                    self._oldest = time.monotonic()
            if not batch:
                return
            try:
                if self._client is None:
                    self._client = self._client_factory()
                answer = self._client.put_record_batch(
                    DeliveryStreamName=self.stream, Records=[{"Data": data} for data in batch]
                )
                failed = int(answer.get("FailedPutCount", 0))
            except Exception:  # the capture path must never reach the request
                failed = len(batch)
            with self._lock:
                self.captured += len(batch) - failed
                self.dropped += failed

    def wait(self, timeout: float = 10.0) -> None:
        """Wait for a flush in progress (tests and shutdown)."""
        sending = self._sending
        if sending is not None:
            sending.join(timeout)

    def take_counts(self) -> tuple[int, int]:
        """(captured, dropped) since the last call, for the invocation's metrics."""
        with self._lock:
            counts = (self.captured, self.dropped)
            self.captured = self.dropped = 0
        return counts

    def before_snapshot(self) -> None:
        """SnapStart: send what is buffered and let go of the client, so that no connection is in the snapshot."""
        self.flush()
        self.wait()
        self._client = None
        self._sending = None

    def after_restore(self) -> None:
        """SnapStart: every environment restored from one snapshot would draw the same "random" sampling decisions
        from the same generator state, and share a client whose connections and credentials are the snapshot's.
        A fresh seed from os.urandom, a fresh client on the next send, no thread carried over."""
        self._random = random.Random()
        with self._lock:
            self._client = None
            self._sending = None
            self._oldest = time.monotonic()


def _firehose() -> Any:
    import boto3

    return boto3.client("firehose")
