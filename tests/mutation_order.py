"""A pytest plugin for ``make mutate`` (tools/mutate.py): a mutant's tests run in the order of its group's test
files, the ones that kill the most mutants soonest first (unit tests before functional ones, a store's own small
artifacts before a cold start over HTTP). mutmut runs each mutant's tests with ``-x`` in no particular order (a
set's), so a mutant that a unit test kills in milliseconds would otherwise often wait for functional tests of
seconds to pass first, and a survivor's time is the same either way."""

from __future__ import annotations

import os

import pytest

ORDER_VARIABLE = "MUTATE_TEST_ORDER"  # the group's pytest arguments, as tools/mutate.py passes them


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    files = [word for word in os.environ.get(ORDER_VARIABLE, "").split() if word.endswith(".py")]

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return files.index(path) if path in files else len(files)

    items.sort(key=rank)  # stable: within a file, as collected
