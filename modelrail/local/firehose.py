"""LocalFirehose: the data capture stream on the embedded AWS, delivering to S3 as the deployed stream does.

moto's Firehose answers PutRecordBatch (what the inference function calls) but writes each call to S3 at once,
uncompressed, under its literal prefix: no buffering, no dynamic partitioning, none of the layout the drift monitor
reads. So the stream is created in moto with an HTTP endpoint destination, and that endpoint is this receiver,
which does the deployed S3 destination's job (spec/capture.py): partition keys from each record by the stream's JQ
query, one buffer per partition held for the buffering interval (on the given clock, so time compression scales
it), then one gzip object per buffer under the evaluated prefix, named as Firehose names its objects.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from spec.capture import BUFFER_INTERVAL_S, BUFFER_SIZE_MB, PARTITION_KEYS_QUERY, PARTITIONED_PREFIX

from .aws import EmbeddedAWS

STREAM_VERSION = 1  # Firehose's stream version in object names: 1 until the stream's configuration changes
_EXPRESSION = re.compile(r"!\{(?P<namespace>[a-zA-Z]+):(?P<value>[^}]*)\}")
_JAVA_TIME = re.compile(r"yyyy|MM|dd|HH|mm|ss|[A-Za-z]")
_STRFTIME = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


def partition_keys_query(query: str) -> list[tuple[str, str]]:
    """(key, record field) pairs of a JQ metadata-extraction query of the form ``{key: .field, ...}``."""
    body = query.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise ValueError(f"partition keys query {query!r}: expected {{key: .field, ...}}")
    pairs = []
    for part in body[1:-1].split(","):
        match = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*:\s*\.([A-Za-z_]\w*)\s*", part)
        if match is None:
            raise ValueError(f"partition keys query {query!r}: {part.strip()!r} is not 'key: .field'")
        pairs.append((match[1], match[2]))
    return pairs


def java_time(pattern: str, at: datetime) -> str:
    """A ``!{timestamp:...}`` pattern (Java DateTimeFormatter letters yyyy MM dd HH mm ss) evaluated at ``at``."""

    def letter(match: re.Match[str]) -> str:
        if match[0] not in _STRFTIME:
            raise ValueError(f"timestamp pattern {pattern!r}: {match[0]!r} is not one of {sorted(_STRFTIME)}")
        return _STRFTIME[match[0]]

    return at.strftime(_JAVA_TIME.sub(letter, pattern))


def evaluate_prefix(prefix: str, keys: dict[str, str], arrival: datetime) -> str:
    """The prefix with its ``partitionKeyFromQuery`` and ``timestamp`` expressions evaluated."""

    def expression(match: re.Match[str]) -> str:
        namespace, value = match["namespace"], match["value"]
        if namespace == "partitionKeyFromQuery":
            return keys[value]
        if namespace == "timestamp":
            return java_time(value, arrival)
        raise ValueError(f"prefix {prefix!r}: the {namespace!r} namespace is not supported locally")

    return _EXPRESSION.sub(expression, prefix)


@dataclass
class _Buffer:
    oldest: datetime
    records: list[bytes] = field(default_factory=list)
    size: int = 0


class LocalFirehose:
    """Start with :meth:`start`; ``now`` is the clock buffers are timed on (the rehearsal's, in time compression)."""

    def __init__(
        self,
        aws: EmbeddedAWS,
        *,
        name: str,
        bucket: str,
        now: Callable[[], datetime],
        interval_s: float = BUFFER_INTERVAL_S,
        poll_s: float = 0.05,
        mirror: Path | None = None,
    ) -> None:
        """``mirror``: a folder that receives a copy of each object delivered, under its key (``--capture DIR``)."""
        self.aws = aws
        self.mirror = mirror
        self.name = name
        self.bucket = bucket
        self.now = now
        self.interval_s = interval_s
        self.poll_s = poll_s
        self.keys = partition_keys_query(PARTITION_KEYS_QUERY)
        self.delivered: list[str] = []  # object keys, in delivery order
        self.received = 0
        self.failed = 0  # records without their partition keys (AWS writes them under the error output prefix)
        self._buffers: dict[tuple[str, ...], _Buffer] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._s3 = aws.client("s3")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), type("_Bound", (_Receiver,), {"firehose": self}))
        self._server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    def start(self) -> LocalFirehose:
        self._s3.create_bucket(Bucket=self.bucket)
        host, port = self._server.server_address[:2]
        for target, name in ((self._server.serve_forever, "receiver"), (self._deliver_loop, "delivery")):
            thread = threading.Thread(target=target, name=f"firehose-{name}:{self.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.aws.client("firehose").create_delivery_stream(
            DeliveryStreamName=self.name,
            DeliveryStreamType="DirectPut",
            HttpEndpointDestinationConfiguration={
                "EndpointConfiguration": {"Url": f"http://{host!s}:{port}/", "Name": "modelrail local delivery"},
                "S3Configuration": {
                    "RoleARN": "arn:aws:iam::123456789012:role/modelrail-local-firehose",
                    "BucketARN": f"arn:aws:s3:::{self.bucket}",
                },
            },
        )
        return self

    def stop(self) -> None:
        """Deliver what is buffered (as Firehose eventually would) and stop."""
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self.deliver(force=True)
        self.aws.client("firehose").delete_delivery_stream(DeliveryStreamName=self.name)

    def receive(self, records: list[bytes]) -> None:
        """Records as they arrive from the stream: into their partition's buffer."""
        arrival = self.now()
        with self._lock:
            self.received += len(records)
            for data in records:
                keys = self._partition(data)
                if keys is None:
                    self.failed += 1
                    continue
                buffer = self._buffers.setdefault(keys, _Buffer(arrival))
                buffer.records.append(data)
                buffer.size += len(data)

    def _partition(self, data: bytes) -> tuple[str, ...] | None:
        try:
            record = json.loads(data)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        values = [record.get(source) for _, source in self.keys]
        if any(v is None or isinstance(v, dict | list) for v in values):
            return None
        return tuple(str(v) for v in values)

    def deliver(self, *, force: bool = False) -> list[str]:
        """Write every buffer whose interval has passed (all of them with ``force``); the keys written."""
        now = self.now()
        with self._lock:
            due = {
                keys: buffer
                for keys, buffer in self._buffers.items()
                if force
                or (now - buffer.oldest).total_seconds() >= self.interval_s
                or buffer.size >= BUFFER_SIZE_MB * 1024 * 1024
            }
            for keys in due:
                del self._buffers[keys]
        written = []
        for keys, buffer in due.items():
            names = dict(zip((k for k, _ in self.keys), keys, strict=True))
            # Firehose times an object (its hour= partition and its name) by the arrival of its oldest record.
            at = buffer.oldest
            key = (
                evaluate_prefix(PARTITIONED_PREFIX, names, at)
                + f"{self.name}-{STREAM_VERSION}-{at:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.gz"
            )
            body = gzip.compress(b"".join(buffer.records))
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=body)
            if self.mirror is not None:
                copy = self.mirror / key
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_bytes(body)
            written.append(key)
        with self._lock:
            self.delivered.extend(written)
        return written

    def _deliver_loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.deliver()


class _Receiver(BaseHTTPRequestHandler):
    """Firehose's HTTP endpoint delivery request: ``{"requestId", "timestamp", "records": [{"data": base64}]}``."""

    firehose: LocalFirehose

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        try:
            request: dict[str, Any] = json.loads(self.rfile.read(length))
            records = [base64.b64decode(r["data"]) for r in request["records"]]
        except (ValueError, KeyError, TypeError) as exc:
            self._answer(400, {"errorMessage": f"not a Firehose delivery request: {exc}"})
            return
        self.firehose.receive(records)
        self._answer(200, {"requestId": request.get("requestId"), "timestamp": request.get("timestamp")})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass
