"""The catalog is the one place metric, dimension and variable names are written, and each function reads exactly
the variables the catalog says it reads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from functions import catalog
from functions.catalog import Dimension, Env, EnvVar, Function

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
# Each function's entry module (its handler), in its package.
ENTRY_POINTS = {
    Function.INFERENCE: FUNCTIONS / "inference" / "handler.py",
    Function.PRE_TRAFFIC: FUNCTIONS / "acceptance" / "pretraffic.py",
    Function.POST_TRAFFIC: FUNCTIONS / "acceptance" / "posttraffic.py",
    Function.MONITOR: FUNCTIONS / "monitor" / "handler.py",
}
ATTRIBUTE = {v.name: attribute for attribute, v in vars(Env).items() if isinstance(v, EnvVar)}


def modules_of(entry: Path) -> set[Path]:
    """The entry module and every module of its package it imports, transitively (relative imports)."""
    found: set[Path] = set()
    pending = [entry]
    while pending:
        path = pending.pop()
        if path in found:
            continue
        found.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                targets = [node.module] if node.module else [alias.name for alias in node.names]
                pending += [p for t in targets if t != "catalog" and (p := entry.parent / f"{t}.py").is_file()]
    return found


def env_attributes_used(paths: set[Path]) -> set[str]:
    """The ``Env.<NAME>`` attributes the modules refer to."""
    used = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Env":
                used.add(node.attr)
    return used


@pytest.mark.parametrize("function", sorted(ENTRY_POINTS))
def test_each_function_reads_exactly_the_variables_the_catalog_lists_for_it(function: Function) -> None:
    used = env_attributes_used(modules_of(ENTRY_POINTS[function]))
    listed = {ATTRIBUTE[v.name] for v in catalog.read_by(function)}
    assert used == listed, f"{function}: read but not listed {used - listed}, listed but not read {listed - used}"


def test_every_function_package_carries_the_catalog_itself() -> None:
    # On Lambda each package is top-level and alone: its catalog.py must resolve to the shared file.
    for package in ("inference", "acceptance", "monitor"):
        own = FUNCTIONS / package / "catalog.py"
        assert own.resolve() == (FUNCTIONS / "catalog.py").resolve(), own


def test_no_metric_dimension_or_variable_name_is_written_outside_the_catalog() -> None:
    """A name written twice drifts: an alarm on a renamed metric watches nothing and, with missing data not
    breaching, never fires. Names shared with AWS's own APIs stay out of the check: the namespace equals the
    product's name, ``FunctionName`` is also a Lambda API parameter, ``Resource`` an IAM policy element, and
    AWS_LAMBDA_* variables are the runtime's."""
    names = {m.name for m in catalog.METRICS} | {catalog.LAMBDA_NAMESPACE}
    names |= {Dimension.MODEL_NAME, Dimension.MODEL_VERSION, Dimension.FEATURE}
    names |= {Dimension.EXECUTED_VERSION}
    names |= {v.name for v in catalog.ENV_VARS if not v.name.startswith("AWS_LAMBDA_")}
    written = []
    for folder in ("functions", "spec", "infra", "modelrail", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "catalog.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in names:
                    written.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not written, "names written outside functions/catalog.py:\n" + "\n".join(written)


def test_metric_names_are_unique_within_their_namespace() -> None:
    keys = [(m.namespace, m.name) for m in catalog.METRICS]
    assert len(keys) == len(set(keys))
    assert len({v.name for v in catalog.ENV_VARS}) == len(catalog.ENV_VARS)
    assert {v.name for v in vars(Env).values() if isinstance(v, EnvVar)} == {v.name for v in catalog.ENV_VARS}
