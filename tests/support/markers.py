"""Tiers (a pytest plugin): a test that uses Azurite is an ``integration`` test, marked or not.

Any test whose fixture closure holds one of :data:`INTEGRATION_FIXTURES` (``azurite`` and so
every fixture built on it, such as ``blob_container``; ``hung_port`` and ``http_files``, servers
in a thread) gets the ``integration`` marker at collection, before ``-m`` selects, so a new
Azurite test cannot land in ``make test-fast``'s unit tier by mistake. Tests that start a
subprocess or a server some other way are marked where they are written (tests/test_support.py
checks this plugin).
"""

from __future__ import annotations

import pytest

INTEGRATION_FIXTURES = frozenset({"azurite", "hung_port", "http_files"})
"""Fixtures that start a real component: a test that needs one, directly or not, is integration."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
