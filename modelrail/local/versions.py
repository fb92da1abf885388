"""Several bundles of one model served locally as its versions, as Lambda versions of one function would be.

``serve A B`` with two bundles named the same serves them as versions 1 and 2 (their order on the command line),
or as the ``version`` each one's ``modelrail.json`` names; ``/v2/models/{name}/versions/{v}/...`` reaches that
version and ``/v2/models/{name}/...`` the newest (the last given), as the ``live`` alias would after a rollout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from spec.bundle import ModelBundle

from .worker import Invocation, LambdaWorker

_VERSION_PATH = re.compile(r"^/v2/models/[^/]+/versions/(?P<version>[^/]+)")


class VersionClash(ValueError):
    """Two bundles that cannot both be served: one line naming them and what to change."""


@dataclass(frozen=True)
class ServedVersion:
    version: str
    bundle: ModelBundle


def assign_versions(bundles: Iterable[ModelBundle]) -> dict[str, list[ServedVersion]]:
    """Each model's versions, oldest first: the bundle's ``version`` setting, else its place among the bundles of
    that model as given (1, 2, ...)."""
    models: dict[str, list[ServedVersion]] = {}
    for bundle in bundles:
        served = models.setdefault(bundle.name, [])
        for other in served:
            if other.bundle.root.resolve() == bundle.root.resolve():
                raise VersionClash(f"{bundle.root} is given twice")
        version = bundle.settings.version or str(len(served) + 1)
        clash = next((s for s in served if s.version == version), None)
        if clash is not None:
            raise VersionClash(
                f"{clash.bundle.root} and {bundle.root} are both version {version} of model '{bundle.name}': "
                'set "version" (or "name") in one\'s modelrail.json'
            )
        served.append(ServedVersion(version, bundle))
    return models


class VersionedTarget:
    """The gateway's target for one model with several versions: the path's version, else the newest."""

    def __init__(self, workers: dict[str, LambdaWorker], newest: str) -> None:
        self.workers = workers
        self.newest = newest

    def invoke(self, event: dict[str, Any]) -> Invocation:
        path = str(event.get("path", ""))
        match = _VERSION_PATH.match(path)
        if match is None:
            invocation = self.workers[self.newest].invoke(event)
            return self._with_versions(event, invocation)
        worker = self.workers.get(match["version"])
        if worker is None:
            served = ", ".join(self.workers)
            body = {"error": f"no version '{match['version']}' of this model is served here; versions: {served}"}
            return Invocation(
                {"statusCode": 404, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
            )
        return worker.invoke(event)

    def _with_versions(self, event: dict[str, Any], invocation: Invocation) -> Invocation:
        """Model metadata names every version served, newest (the one answering) first."""
        response = invocation.response
        if event.get("httpMethod") != "GET" or response.get("statusCode") != 200 or response.get("isBase64Encoded"):
            return invocation
        if not re.fullmatch(r"/v2/models/[^/]+/?", str(event.get("path", ""))):
            return invocation
        try:
            document = json.loads(response.get("body") or "")
        except ValueError:
            return invocation
        if not isinstance(document, dict) or "versions" not in document:
            return invocation
        document["versions"] = [self.newest, *(v for v in reversed(self.workers) if v != self.newest)]
        return Invocation({**response, "body": json.dumps(document)}, invocation.logs, invocation.duration_ms)
