"""reconcile.matching._gc.paused_gc: the collector is off inside, and back as it was after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from reconcile.matching._gc import paused_gc


@pytest.fixture(autouse=True)
def _collector_state() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


@paused_gc
def _inside() -> bool:
    return gc.isenabled()


@paused_gc
def _nested() -> tuple[bool, bool]:
    inner = _inside()
    return inner, gc.isenabled()


@paused_gc
def _fails() -> None:
    raise ValueError("boom")


def test_off_inside_and_restored_after() -> None:
    gc.enable()
    assert _inside() is False
    assert gc.isenabled()


def test_nested_calls_keep_it_off_until_the_outermost_returns() -> None:
    gc.enable()
    assert _nested() == (False, False)
    assert gc.isenabled()


def test_restored_when_the_call_raises() -> None:
    gc.enable()
    with pytest.raises(ValueError, match="boom"):
        _fails()
    assert gc.isenabled()


def test_left_off_when_it_was_off() -> None:
    gc.disable()
    assert _inside() is False
    assert not gc.isenabled()
