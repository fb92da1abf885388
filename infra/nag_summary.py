"""The one line ``make synth`` ends with: what cdk-nag's AwsSolutions pack found in the synthesized stacks.

Read from the cloud assembly's metadata files, where cdk-nag's findings (``aws:cdk:error``/``aws:cdk:warning``
entries naming ``AwsSolutions-...``) and the acknowledgments with their reasons (``aws:cdk:acknowledged-rules``)
are recorded per construct.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PACK = "AwsSolutions-"


def nag_counts(assembly_dir: Path) -> dict[str, int]:
    """``stacks``, ``acknowledged``, ``errors`` and ``warnings`` (cdk-nag's own) over every stack's metadata file."""
    counts = {"stacks": 0, "acknowledged": 0, "errors": 0, "warnings": 0}
    for path in sorted(assembly_dir.glob("*.metadata.json")):
        counts["stacks"] += 1
        metadata: dict[str, list[dict[str, Any]]] = json.loads(path.read_text())
        for entries in metadata.values():
            for entry in entries:
                kind, data = entry.get("type"), entry.get("data")
                if kind == "aws:cdk:acknowledged-rules" and isinstance(data, dict):
                    counts["acknowledged"] += sum(PACK in rule for rule in data)
                elif kind in ("aws:cdk:error", "aws:cdk:warning") and PACK in str(data):
                    counts["errors" if kind == "aws:cdk:error" else "warnings"] += 1
    return counts


def nag_summary(assembly_dir: Path) -> str:
    c = nag_counts(assembly_dir)
    verdict = "passed" if c["errors"] == 0 else "FAILED"
    return (
        f"cdk-nag AwsSolutions {verdict}: {c['errors']} unacknowledged finding(s), {c['warnings']} warning(s), "
        f"{c['acknowledged']} acknowledged with their reasons (infra/), in {c['stacks']} stacks"
    )
