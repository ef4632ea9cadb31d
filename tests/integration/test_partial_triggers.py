"""Trigger writes that fail: reported by customer, exit 1, and finished by retrigger."""

from __future__ import annotations

import pytest

from runtime.adapters.s3 import S3ObjectStore
from runtime.services.archive import ArchiveStore
from runtime.domain.errors import RetryableError
from runtime.services.lifecycle import Lifecycle


class FailingTriggers:
    """The real S3 store, with writes of one customer's triggers failing (a fault seam)."""

    def __init__(self, inner, customer):
        self.inner, self.customer, self.failing = inner, customer, True

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, body, **kw):
        if self.failing and key.startswith(f"customers/{self.customer}/"):
            raise RetryableError("s3.PutObject: 503: SlowDown", operation="s3.PutObject")
        return self.inner.put(key, body, **kw)


def test_failed_trigger_is_reported_and_retrigger_finishes(stack, sample_change):
    store = FailingTriggers(S3ObjectStore(stack.clients, stack.cfg.bucket), "htsnonprod")
    lc = Lifecycle(store, stack.cfg.customer_codes)
    result = lc.submit(sample_change, actor="ann")
    assert result.triggers_written == ["hts"]
    assert list(result.triggers_failed) == ["htsnonprod"] and "SlowDown" in result.triggers_failed["htsnonprod"]
    assert stack.keys("customers/") == [f"customers/hts/{result.change_id}.json"]
    store.failing = False
    again = lc.retrigger(result.change_id, ["htsnonprod"])
    assert again.complete and again.triggers_written == ["htsnonprod"]
    assert stack.get_json(f"customers/htsnonprod/{result.change_id}.json")["seq"] == 1


def test_cli_exits_1_naming_the_customer(stack, sample_change, run_cli, tmp_path, monkeypatch):
    import runtime.cli.main as cli

    real = cli._lifecycle

    def failing(cfg):
        lc = real(cfg)
        lc.store = FailingTriggers(lc.store, "hts")
        return lc

    monkeypatch.setattr(cli, "_lifecycle", failing)
    import yaml

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(sample_change))
    code, out, err = run_cli("change", "submit", p, "--config", stack.path)
    assert code == 1
    assert "trigger for customer hts NOT written" in err and "retrigger" in err
    assert out.strip().startswith("CHG-")


class RacingStore:
    """Lets another writer slip in between our read and our conditional write, ``times`` times."""

    def __init__(self, inner, times):
        self.inner, self.times = inner, times

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, body, *, if_match=None, if_none_match=False):
        if if_match is not None and self.times > 0:
            self.times -= 1
            import json

            other = json.loads(self.inner.get(key).body)
            other.setdefault("otherWriter", []).append(self.times)
            self.inner.put(key, json.dumps(other).encode())
        return self.inner.put(key, body, if_match=if_match, if_none_match=if_none_match)


def test_compare_and_swap_retries_and_loses_nobodys_write(stack, sample_change):
    base = S3ObjectStore(stack.clients, stack.cfg.bucket)
    change_id = Lifecycle(base, stack.cfg.customer_codes).submit(sample_change, actor="a").change_id
    racing = RacingStore(base, times=3)
    result = Lifecycle(racing, stack.cfg.customer_codes).transition(change_id, "approve", actor="b")
    assert result.change["version"] == 2
    final = stack.get_json(f"archive/{change_id}.json")
    assert final["otherWriter"] == [2, 1, 0] and final["status"] == "approved"
    assert [m["type"] for m in final["modifications"]] == ["submitted", "approved"]


def test_compare_and_swap_gives_up_after_bounded_attempts(stack, sample_change):
    base = S3ObjectStore(stack.clients, stack.cfg.bucket)
    change_id = Lifecycle(base, stack.cfg.customer_codes).submit(sample_change, actor="a").change_id
    archive = ArchiveStore(RacingStore(base, times=100), attempts=3, sleep=lambda s: None)
    with pytest.raises(RetryableError, match="gave up after 3"):
        archive.update(change_id, lambda c: {**c, "touched": True})
    assert "touched" not in stack.get_json(f"archive/{change_id}.json")
