"""Data capture's delivery as data: how the deployed Firehose stream partitions, compresses and names the objects
the drift monitor reads. infra/capture.py configures the stream from it; the local stand-in (modelrail.local.firehose)
delivers by it."""

from __future__ import annotations

from functions.monitor.capture import CAPTURE_PREFIX

from .alarms import CAPTURE_BUFFER_INTERVAL_S

PARTITIONED_PREFIX = (
    f"{CAPTURE_PREFIX}model=!{{partitionKeyFromQuery:model}}/version=!{{partitionKeyFromQuery:version}}/"
    "hour=!{timestamp:yyyy-MM-dd-HH}/"
)
"""Dynamic partitioning: each record goes under its own model and version, by the hour it arrived."""
ERROR_OUTPUT_PREFIX = "capture-errors/!{firehose:error-output-type}/!{timestamp:yyyy-MM-dd-HH}/"
PARTITION_KEYS_QUERY = "{model: .model, version: .version}"
"""The JQ metadata-extraction query that yields the partition keys from each record."""
COMPRESSION = "GZIP"
BUFFER_INTERVAL_S = CAPTURE_BUFFER_INTERVAL_S
BUFFER_SIZE_MB = 64
"""Dynamic partitioning needs buffers of at least 64 MB; the interval bounds the delay instead."""
