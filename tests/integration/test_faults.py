"""The fault seam itself: botocore hooks that answer in AWS's place, through our adapters."""

import pytest

from runtime.adapters.aws import AwsClients
from runtime.adapters.s3 import S3ObjectStore
from runtime.domain.errors import PreconditionFailed, RetryableError
from runtime.testing.faults import Injector


@pytest.fixture()
def store(aws_emulator):
    import uuid

    clients = AwsClients("us-east-1", aws_emulator.endpoint_url)
    bucket = f"ttr-faults-{uuid.uuid4().hex[:8]}"
    clients.client("s3").create_bucket(Bucket=bucket)
    return clients, S3ObjectStore(clients, bucket)


def test_injected_errors_surface_as_our_errors_and_can_be_switched_off(store):
    clients, st = store
    inj = Injector(1, rates={"s3.PutObject": 1.0}).install(clients)
    with pytest.raises(RetryableError, match="injected SlowDown"):
        st.put("k", b"1")
    inj.enabled = False
    assert st.put("k", b"1")
    assert inj.counts == {"s3.PutObject": 1}


def test_conflicts_hit_conditional_writes_only(store):
    clients, st = store
    etag = st.put("k", b"1")
    inj = Injector(1, rates={"s3.PutObject.conflict": 1.0}).install(clients)
    assert st.put("plain", b"x")                       # unconditional: untouched
    with pytest.raises(PreconditionFailed):
        st.put("k", b"2", if_match=etag)
    assert inj.counts == {"s3.PutObject.conflict": 1}


def test_the_same_seed_injects_the_same_schedule(store):
    a, b = Injector(42), Injector(42)
    assert [a.roll("s3.GetObject") for _ in range(200)] == [b.roll("s3.GetObject") for _ in range(200)]
