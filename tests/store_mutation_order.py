"""A pytest plugin for ``make mutate``'s artifact store group (tools/mutate.py ``Group.pytest_args``): a mutant's
tests run in the order that kills store mutants soonest. mutmut runs each mutant's tests with ``-x`` in no particular
order (a set's); the store's own tests on small artifacts (test_ranged_fetch, test_model_store: milliseconds after
moto's setup, and each pins one rule) first, then the cold-start tests (a handler import each), then the prefetch
tests (moto's server over HTTP)."""

from __future__ import annotations

import pytest

ORDER = (
    "tests/functional/test_ranged_fetch.py",
    "tests/functional/test_model_store.py",
    "tests/functional/test_cold_start_faults.py",
    "tests/functional/test_prefetch.py",
)


def _rank(item: pytest.Item) -> tuple[int, int]:
    path = item.nodeid.split("::", 1)[0]
    return (ORDER.index(path) if path in ORDER else len(ORDER), item.location[1] or 0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # within a file, in its order (stable: a test's parameters as collected)
