"""Trigger writes that fail, through the CLI on moto: exit 1 naming the customer. The lifecycle's
own handling of failed trigger writes and write races runs on the in-memory store:
tests/unit/test_lifecycle_writes.py."""

from __future__ import annotations

from runtime.testing.store_faults import FailingTriggers


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

