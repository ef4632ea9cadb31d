"""The fast chaos profile: seeded faults, actor kills and one whole-runtime restart, then the
invariants (nothing lost, exactly-once records, one meeting, nothing left behind)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ray


@pytest.mark.timeout(900)
def test_fast_chaos_profile_keeps_every_promise(ray_session, aws_emulator, graph_emulator):
    from runtime.testing.chaos import FAST, ChaosRun

    report = ChaosRun(FAST, aws_endpoint=aws_emulator.endpoint_url, graph=graph_emulator).run()
    print("\n".join(report.lines()))
    # the chaos really happened
    assert sum(report.faults.values()) > 0 and sum(report.kills.values()) > 0
    assert report.runtime_restarts == 1
    # and every promise held
    assert report.lost == 0 and report.emails_delivered == report.emails_expected
    assert report.processed_missing == 0 and report.processed_extra == 0
    assert report.meeting_violations == []
    assert report.triggers_left == 0 and report.queue_left == 0 and report.dlq_left == 0
    assert report.fields_lost == 0
    assert report.duplicates <= report.duplicate_bound
    assert report.ok
