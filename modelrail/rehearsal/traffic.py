"""LoadGenerator: steady concurrent traffic over HTTP to the local gateway, like users' clients.

Requests are replayed from a file of Open Inference Protocol bodies, or made from the baseline's acceptance
set with the variety of real inputs: measurements jittered around the set's values (so some fall outside what
the set covers), batches of several rows, and a few client mistakes.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from functions.acceptance.gate import AcceptanceCase

MISTAKES = ("wrong shape", "wrong datatype", "not JSON")
GENERATED_MISTAKES = 0.03  # the share of generated requests that are client mistakes (replayed traffic: none)
CLIENTS = 4  # client threads, each waiting for its answer before its next request: at most 4 requests in flight


def load_traffic_file(path: Path) -> list[dict[str, Any]]:
    """Request bodies: OIP requests one a line, or capture records (a capture file or folder in the deployed layout),
    rebuilt from their own inputs in the order they were captured."""
    from modelrail.readers import is_capture

    if is_capture(path):
        return _captured_requests(path)
    bodies = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            body = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise ValueError(f"{path}:{number}: expected an Open Inference Protocol request with 'inputs'")
        bodies.append(body)
    if not bodies:
        raise ValueError(f"{path}: no requests")
    return bodies


def _captured_requests(path: Path) -> list[dict[str, Any]]:
    from functions.monitor.capture import parse_records
    from modelrail.readers import capture_files

    records = [r for file in capture_files(path) for r in parse_records(file.read_bytes(), str(file))]
    excluded = sum(1 for r in records if r.get("excluded"))
    usable = sorted((r for r in records if r.get("inputs") and not r.get("excluded")), key=lambda r: str(r.get("time")))
    if not usable:
        why = f"all {excluded} have inputs excluded from capture" if excluded else f"{len(records)} record(s) read"
        raise ValueError(f"{path}: no capture record to rebuild a request from ({why})")
    return [{"inputs": r["inputs"]} for r in usable]


class RequestMix:
    """Request bodies: replayed as given, or generated from acceptance cases. ``mistakes``: the share of requests
    that are client mistakes instead (default: none in replayed traffic, GENERATED_MISTAKES in generated)."""

    def __init__(
        self,
        cases: Sequence[AcceptanceCase] = (),
        replay: Sequence[dict[str, Any]] = (),
        *,
        jitter: float = 0.5,
        mistakes: float | None = None,
        seed: int = 1,
    ) -> None:
        if not cases and not replay:
            raise ValueError("traffic needs a --traffic file or a baseline bundle with an acceptance set")
        self.cases = list(cases)
        self.replay = list(replay)
        self.jitter = jitter
        self.mistakes = mistakes if mistakes is not None else (0.0 if self.replay else GENERATED_MISTAKES)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._next = 0
        self._spread = self._feature_spread()

    def _feature_spread(self) -> dict[str, list[float]]:
        """Per input, per feature (last axis), the standard deviation across the acceptance set."""
        columns: dict[str, list[list[float]]] = {}
        for case in self.cases:
            for tensor in case.inputs:
                if tensor.get("datatype") not in ("FP16", "FP32", "FP64") or not tensor.get("shape"):
                    continue
                width = tensor["shape"][-1] or 1
                data = list(_flatten(tensor["data"]))
                for row in range(len(data) // width):
                    columns.setdefault(tensor["name"], []).append(data[row * width : (row + 1) * width])
        spread = {}
        for name, rows in columns.items():
            width = len(rows[0])
            means = [sum(r[i] for r in rows) / len(rows) for i in range(width)]
            spread[name] = [(sum((r[i] - means[i]) ** 2 for r in rows) / len(rows)) ** 0.5 for i in range(width)]
        return spread

    def next(self) -> tuple[bytes, str]:
        """(body, kind) where kind is "ok" or the client mistake made."""
        with self._lock:
            rnd = self._random
            if rnd.random() < self.mistakes:
                return self._mistake(rnd)
            if self.replay:
                body = self.replay[self._next % len(self.replay)]
                self._next += 1
                return json.dumps(body).encode(), "ok"
            rows = 1 if rnd.random() < 0.8 else rnd.randint(2, 8)
            picked = [rnd.choice(self.cases) for _ in range(rows)]
            return json.dumps({"inputs": self._batch(picked, rnd)}).encode(), "ok"

    def _batch(self, cases: list[AcceptanceCase], rnd: random.Random) -> list[dict[str, Any]]:
        inputs = []
        for position, template in enumerate(cases[0].inputs):
            data: list[Any] = []
            for case in cases:
                tensor = case.inputs[position]
                values = list(_flatten(tensor["data"]))
                spread = self._spread.get(tensor["name"])
                if spread:
                    width = len(spread)
                    values = [round(v + rnd.gauss(0, self.jitter * spread[i % width]), 3) for i, v in enumerate(values)]
                data.extend(values)
            shape = [len(cases) * template["shape"][0], *template["shape"][1:]]
            inputs.append({**template, "shape": shape, "data": data})
        return inputs

    def _mistake(self, rnd: random.Random) -> tuple[bytes, str]:
        kind = rnd.choice(MISTAKES)
        if kind == "not JSON":
            return b'{"inputs": [', kind
        template = (self.cases[0].inputs if self.cases else self.replay[0]["inputs"])[0]
        if kind == "wrong shape":
            return json.dumps({"inputs": [{**template, "shape": [1, 999]}]}).encode(), kind
        return json.dumps({"inputs": [{**template, "datatype": "INT8"}]}).encode(), kind


def _flatten(data: Any) -> Any:
    for item in data:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


class LoadGenerator:
    """``rate`` requests per second (wall clock) from ``threads`` clients until stopped."""

    def __init__(self, url: str, model: str, mix: RequestMix, *, rate: float = 40.0, threads: int = CLIENTS) -> None:
        address = urlsplit(url)
        self.host, self.port = address.hostname or "127.0.0.1", address.port
        self.path = f"/v2/models/{model}/infer"
        self.mix = mix
        self.rate = rate
        self.threads = threads
        self.sent = 0
        self.failed_to_send = 0
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> LoadGenerator:
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index,), name=f"load-{index}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=30)

    def _run(self, index: int) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        next_at = time.monotonic() + index / self.rate
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            next_at += self.threads / self.rate  # read each time: the rehearsal changes it after the warm-up
            body, _ = self.mix.next()
            try:
                connection.request("POST", self.path, body=body, headers={"content-type": "application/json"})
                connection.getresponse().read()
                with self._lock:
                    self.sent += 1
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.failed_to_send += 1
                connection.close()
                connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        connection.close()
