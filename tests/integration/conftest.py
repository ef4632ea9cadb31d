"""Fixtures of the in-process meeting tests (test_meetings_flow, test_recipient_view)."""

from __future__ import annotations

import pytest

from tests.conftest import make_stack


@pytest.fixture()
def stack3_shape():
    """How ``stack3`` changes the test configuration; a test module overrides it for its own."""
    from tests.integration.meetings_env import three_customers  # the Graph SDK loads only where used

    return three_customers


@pytest.fixture()
def stack3(aws_emulator, tmp_path, stack3_shape):
    return make_stack(aws_emulator.endpoint_url, tmp_path, stack3_shape)


@pytest.fixture()
def emu(graph_emulator):
    graph_emulator.reset()
    return graph_emulator


def _env(parts, emu):
    from tests.integration.meetings_env import Env

    e = Env(parts, emu)
    yield e
    e.close()


@pytest.fixture()
def env(stack3, emu):
    yield from _env(stack3, emu)


@pytest.fixture()
def moto_env(stack3, emu):
    """``env`` on the moto server, by this name where a module's own ``env`` is in memory."""
    yield from _env(stack3, emu)
