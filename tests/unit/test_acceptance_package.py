"""The acceptance package ships to Lambda alone (infra.inference.functions_code leaves the other function packages
out): what its replay shares with the monitor (capture records, PSI) must be inside it, as the catalog is."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
ACCEPTANCE = FUNCTIONS / "acceptance"


def test_the_replay_reads_capture_and_psi_from_the_monitors_own_modules() -> None:
    # One definition of the capture layout and of PSI: symlinks here, real files in the deployed asset.
    for name in ("capture", "stats"):
        own = ACCEPTANCE / f"{name}.py"
        assert own.is_symlink(), own
        assert own.resolve() == (FUNCTIONS / "monitor" / f"{name}.py").resolve(), own


def test_every_import_of_the_acceptance_package_resolves_inside_it() -> None:
    """A module of monitor/ that starts importing a sibling the acceptance package lacks would break the hook's
    import on Lambda (and a hook that cannot import never reports: CodeDeploy waits an hour)."""
    missing = []
    for path in sorted(ACCEPTANCE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            if node.level > 1:
                missing.append(f"{path.name}:{node.lineno} reaches outside the package")
                continue
            targets = [node.module] if node.module else [alias.name for alias in node.names]
            missing += [f"{path.name}:{node.lineno} .{t}" for t in targets if not (ACCEPTANCE / f"{t}.py").is_file()]
    assert not missing, missing
