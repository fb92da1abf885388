"""A pytest plugin for ``make mutate`` (tools/mutate.py ``Group.pytest_args``): a mutant's unit tests run before its
functional ones. mutmut runs each mutant's tests with ``-x`` in no particular order (a set's), so a mutant that a
unit test kills in milliseconds would otherwise often wait for a functional test of seconds to pass first."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith("tests/unit/"))  # stable: otherwise as collected
