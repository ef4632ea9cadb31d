"""The actor boundary's error codec: every error type in runtime/domain/errors.py (and the ones defined
beside the actors) crosses it with its type, message, retryable, retry_after, code and operation."""

from __future__ import annotations

import pickle

import pytest

import runtime.domain.errors as errors
from actors.messages import ErrorData, decode_error, encode_error, unwrap
from actors.placement import ClusterTooSmall

ALL = sorted({obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, errors.TtrError)},
             key=lambda c: c.__name__)


def _make(cls):
    if cls is ClusterTooSmall:
        return cls("too small")
    if issubclass(cls, errors.ExternalError):
        return cls(f"{cls.__name__} happened", operation="s3.PutObject", retry_after=7.5, code="SlowDown")
    return cls(f"{cls.__name__} happened", retry_after=3.0, code="SomeCode")


def test_every_error_type_is_covered():
    assert len(ALL) >= 14 and errors.TenantPaused in ALL and errors.ConflictError in ALL


@pytest.mark.parametrize("cls", [*ALL, ClusterTooSmall], ids=lambda c: c.__name__)
def test_round_trip_keeps_type_and_data(cls):
    exc = _make(cls)
    data = pickle.loads(pickle.dumps(encode_error(exc)))   # as Ray ships it
    back = decode_error(data)
    assert type(back) is cls
    assert (str(back), back.message, back.retryable, back.retry_after, back.code, back.exit_code) == \
        (str(exc), exc.message, exc.retryable, exc.retry_after, exc.code, exc.exit_code)
    assert getattr(back, "operation", None) == getattr(exc, "operation", None)
    with pytest.raises(cls):
        unwrap(data)


def test_an_unknown_type_keeps_its_data_and_retryability():
    back = decode_error(ErrorData("NewerError", "from a newer peer", True, 4.0, "X", "graph.create"))
    assert isinstance(back, errors.RetryableError) and back.retry_after == 4.0 and back.code == "X"
    assert back.operation == "graph.create"
    assert not decode_error(ErrorData("OtherError", "no", False)).retryable


def test_a_result_passes_through_unwrap():
    assert unwrap(42) == 42
