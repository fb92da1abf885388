"""The artifact download, started before the heavy imports of a cold start (numpy, onnxruntime, Powertools).

Importing those is CPU work; the download is mostly waiting on S3. Started first, in a thread, the fetch (and its
sha256 check) overlaps the imports, and the service only waits for what is left of it. Only the standard library,
catalog.py, store.py and s3get.py are imported here, so starting it costs a few milliseconds.

It starts only in an execution environment (AWS_LAMBDA_FUNCTION_NAME: Lambda's, or the local one) whose credentials
are in the environment (the cold start's own SigV4 client); otherwise (SnapStart's init, which has container
credentials; tests running the handler in-process) the service fetches as before. A prefetch that fails leaves
its error for the service to classify, exactly as its own fetch would have failed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path

from .catalog import Env
from .s3get import environment_client
from .store import DEFAULT_CACHE_DIR, ModelStore, is_sha256, parse_s3_uri


class Prefetch:
    def __init__(self, store: ModelStore, uri: str, sha256: str) -> None:
        self.store = store
        self.uri = uri
        self.sha256 = sha256
        self.waited_s = 0.0
        self._path: Path | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="artifact-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._path = self.store.fetch(self.uri, self.sha256)
        except BaseException as exc:  # handed to the service, which classifies it as for its own fetch
            self._error = exc

    def matches(self, uri: str, sha256: str, cache_dir: Path) -> bool:
        return (uri, sha256, cache_dir) == (self.uri, self.sha256, self.store.cache_dir)

    def result(self) -> Path:
        """The verified artifact's path, once the download is done; its error if it failed."""
        started = time.perf_counter()
        self._thread.join()
        self.waited_s = time.perf_counter() - started
        if self._error is not None:
            raise self._error
        assert self._path is not None
        return self._path


def start(environ: Mapping[str, str]) -> Prefetch | None:
    """A download under way, or None where the service should fetch by itself (see the module's docstring)."""
    if not environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return None
    uri = environ.get(Env.MODEL_URI.name, "")
    sha256 = environ.get(Env.MODEL_SHA256.name, "").strip().lower()  # as Settings reads it
    try:
        parse_s3_uri(uri)
    except ValueError:
        return None  # Settings will name the problem
    client = environment_client(environ)
    if client is None or not is_sha256(sha256):
        return None
    cache_dir = Path(environ.get(Env.MODEL_CACHE_DIR.name) or DEFAULT_CACHE_DIR)
    return Prefetch(ModelStore(cache_dir, client), uri, sha256)
