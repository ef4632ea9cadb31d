"""GraphCalendar (msgraph-sdk) against our Graph emulator, over real HTTP.

pytest-asyncio is not a dependency: each test drives its coroutine with ``asyncio.run`` and
builds its own GraphCalendar inside it (an httpx client belongs to one event loop).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

import runtime.adapters.graph as graph_adapter
from runtime.adapters.graph import GraphCalendar
from runtime.domain.config import GraphConfig
from runtime.domain.errors import NotFound, PermanentError, RetryableError
from runtime.domain.meetings import EXTENDED_PROPERTY_ID, build_meeting_request, meeting_metadata
from tests.conftest import GRAPH_ORGANIZER as ORGANIZER

PORTAL = "http://127.0.0.1:8080"


@pytest.fixture()
def emu(graph_emulator):
    graph_emulator.reset()
    return graph_emulator


def change(change_id="CHG-1", **overrides):
    c = {
        "changeId": change_id,
        "title": "Patch the shared VPN gateways",
        "customers": ["hts", "htsnonprod"],
        "schedule": {"implementationStart": "2026-12-08T07:00:00Z",
                     "implementationEnd": "2026-12-08T09:00:00Z",
                     "timezone": "America/New_York"},
        "reason": "Security fixes",
        "meeting": {"required": True, "location": "Bridge 1"},
    }
    c.update(overrides)
    return c


def request(change_id="CHG-1", attendees=("alice@example.com", "bob@example.com"), **overrides):
    return build_meeting_request(change(change_id, **overrides), list(attendees), portal_base_url=PORTAL)


def run(emu, body, **kwargs):
    """Run ``await body(calendar)`` with a fresh GraphCalendar on the emulator."""
    kwargs.setdefault("static_token", "test-token")
    kwargs.setdefault("retry_delay", 0)  # keep SDK backoff short: tests wait on Retry-After only

    async def main():
        async with GraphCalendar(emu.base_url, ORGANIZER, **kwargs) as cal:
            return await body(cal)

    return asyncio.run(main())


def calls(emu, method, suffix=""):
    return [c for c in emu.calls() if c["method"] == method and c["path"].endswith(suffix)]


# --- create, find, get -----------------------------------------------------------------------
def test_create_makes_a_tagged_teams_meeting(emu):
    ev = run(emu, lambda cal: cal.create(request()))
    assert ev.join_url and ev.join_url.startswith("https://")
    assert ev.subject == "Change Implementation: Patch the shared VPN gateways"
    assert (ev.start, ev.end) == ("2026-12-08T02:00:00-05:00", "2026-12-08T04:00:00-05:00")
    assert ev.organizer == ORGANIZER and ev.attendee_count == 2 and not ev.cancelled
    [stored] = emu.events()
    assert stored["id"] == ev.id
    assert stored["singleValueExtendedProperties"] == [{"id": EXTENDED_PROPERTY_ID, "value": "CHG-1"}]
    assert stored["transactionId"] == request().transaction_id
    assert stored["isOnlineMeeting"] is True and stored["onlineMeetingProvider"] == "teamsForBusiness"
    assert stored["body"]["contentType"].lower() == "html"
    assert stored["location"]["displayName"] == "Bridge 1"
    assert stored["start"] == {"dateTime": "2026-12-08T02:00:00", "timeZone": "America/New_York"}
    assert [a["emailAddress"]["address"] for a in stored["attendees"]] == \
        ["alice@example.com", "bob@example.com"]
    assert {a["type"] for a in stored["attendees"]} == {"required"}
    meta = meeting_metadata(ev)
    assert meta["meetingId"] == ev.id and meta["startTime"].endswith("-05:00")


def test_a_repeated_create_returns_the_same_event(emu):
    async def body(cal):
        return await cal.create(request()), await cal.create(request())

    first, second = run(emu, body)
    assert first.id == second.id
    assert len(emu.events()) == 1


def test_find_by_change(emu):
    async def body(cal):
        created = await cal.create(request("CHG-1"))
        await cal.create(request("CHG-2"))
        return created, await cal.find_by_change("CHG-1"), await cal.find_by_change("CHG-unknown")

    created, found, missing = run(emu, body)
    assert found == created
    assert missing is None


def test_find_by_change_follows_pages_and_prefers_a_live_event(emu, monkeypatch):
    # Two events tagged with one change, the cancelled one first and one event per page:
    # the live one on the second page must win.
    monkeypatch.setattr(graph_adapter, "_PAGE_SIZE", 1)

    async def body(cal):
        old = await cal.create(request())
        await cal.cancel(old.id, "superseded")
        live = await cal.create(dataclasses.replace(request(), transaction_id="another-transaction"))
        return live, await cal.find_by_change("CHG-1")

    live, found = run(emu, body)
    assert found == live and not found.cancelled
    lists = calls(emu, "GET", "/events")
    assert len(lists) == 2 and "$skip=1" in lists[1]["query"]


def test_find_by_change_reports_a_cancelled_event(emu):
    async def body(cal):
        ev = await cal.create(request())
        await cal.cancel(ev.id, "bye")
        return await cal.find_by_change("CHG-1")

    found = run(emu, body)
    assert found is not None and found.cancelled


def test_get_missing_event_is_not_found(emu):
    with pytest.raises(NotFound) as err:
        run(emu, lambda cal: cal.get("AAMk-does-not-exist"))
    assert "graph.events.get" in str(err.value) and err.value.code == "ErrorItemNotFound"


# --- update and cancel -----------------------------------------------------------------------
def test_update_moves_the_event(emu):
    moved = request(schedule={"implementationStart": "2026-12-09T07:00:00Z",
                              "implementationEnd": "2026-12-09T08:00:00Z",
                              "timezone": "America/New_York"},
                    attendees=("carol@example.com",), meeting={"required": True})

    async def body(cal):
        ev = await cal.create(request())
        return ev, await cal.update(ev.id, moved)

    ev, updated = run(emu, body)
    assert updated.id == ev.id
    assert (updated.start, updated.end) == ("2026-12-09T02:00:00-05:00", "2026-12-09T03:00:00-05:00")
    assert updated.attendee_count == 1
    [stored] = emu.events()
    assert stored["updateCount"] == 1
    assert stored["location"]["displayName"] == ""  # the change no longer names one
    assert stored["singleValueExtendedProperties"][0]["value"] == "CHG-1"  # the tag survives


def test_cancel_is_never_retried_and_cancels_once(emu):
    async def body(cal):
        ev = await cal.create(request())
        emu.add_fault(503, count=1, retry_after=1)
        with pytest.raises(RetryableError) as err:
            await cal.cancel(ev.id, "Change cancelled")
        # What a coordinator does next: look before cancelling again.
        assert not (await cal.get(ev.id)).cancelled
        await cal.cancel(ev.id, "Change cancelled")
        return err.value, await cal.get(ev.id)

    err, after = run(emu, body)
    assert err.code == "ServiceUnavailable" and err.retry_after == 1
    assert "graph.events.cancel" in str(err)
    assert [c["status"] for c in calls(emu, "POST", "/cancel")] == [503, 202]  # one try each
    assert after.cancelled
    [stored] = emu.events()
    assert stored["cancelCount"] == 1 and stored["cancelComments"] == ["Change cancelled"]


# --- throttling, failures, timeouts ----------------------------------------------------------
def test_a_429_is_absorbed_by_the_sdk_retry(emu):
    emu.add_fault(429, count=1, retry_after=1)
    started = time.monotonic()
    ev = run(emu, lambda cal: cal.create(request()))
    assert time.monotonic() - started >= 1  # Retry-After honoured
    assert [c["status"] for c in calls(emu, "POST", "/events")] == [429, 201]
    assert [e["id"] for e in emu.events()] == [ev.id]


def test_throttling_beyond_max_retries_surfaces_retry_after(emu):
    emu.add_fault(429, count=3, retry_after=1)
    with pytest.raises(RetryableError) as err:
        run(emu, lambda cal: cal.create(request()), max_retries=1)
    assert err.value.retry_after == 1 and err.value.code == "TooManyRequests"
    assert err.value.operation == "graph.events.create"
    assert len(calls(emu, "POST", "/events")) == 2  # the first try and one retry
    assert emu.events() == []


def test_a_long_retry_after_is_handed_to_the_caller(emu):
    emu.add_fault(429, count=1, retry_after=120)
    started = time.monotonic()
    with pytest.raises(RetryableError) as err:
        run(emu, lambda cal: cal.create(request()), max_inline_wait=5)
    assert time.monotonic() - started < 5
    assert err.value.retry_after == 120
    assert len(calls(emu, "POST", "/events")) == 1


def test_no_token_is_a_permanent_error(emu):
    with pytest.raises(PermanentError) as err:
        run(emu, lambda cal: cal.get("AAMk-any"), static_token="")
    assert not err.value.retryable and err.value.code == "InvalidAuthenticationToken"


def test_a_hung_graph_times_out_and_the_create_is_found_afterwards(emu):
    emu.add_fault(delay=2)  # the request still succeeds, 2 s later: an ambiguous failure
    started = time.monotonic()
    with pytest.raises(RetryableError) as err:
        run(emu, lambda cal: cal.create(request()), timeout=1)
    assert time.monotonic() - started < 2
    assert err.value.code == "Timeout"
    deadline = time.monotonic() + 5
    while not emu.events() and time.monotonic() < deadline:
        time.sleep(0.05)

    async def recover(cal):  # rule 4: look for the event before creating again
        found = await cal.find_by_change("CHG-1")
        return found, await cal.create(request())

    found, again = run(emu, recover)
    assert found is not None and again.id == found.id
    assert len(emu.events()) == 1


def test_a_dead_endpoint_is_retryable():
    from runtime.local.graph_emulator import free_port

    async def body():
        async with GraphCalendar(f"http://127.0.0.1:{free_port()}/v1.0", ORGANIZER,
                                 static_token="t", max_retries=0) as cal:
            await cal.get("x")

    with pytest.raises(RetryableError) as err:
        asyncio.run(body())
    assert err.value.code == "ConnectError"


# --- translation (no HTTP) ---------------------------------------------------------------------
def test_translate_maps_statuses_and_parses_http_date_retry_after():
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime

    import httpx
    from kiota_abstractions.api_error import APIError

    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    err = graph_adapter.translate(APIError("busy", 503, httpx.Headers({"Retry-After": when})), "graph.x")
    assert isinstance(err, RetryableError) and 25 <= err.retry_after <= 30
    assert isinstance(graph_adapter.translate(APIError("bad", 400, None), "graph.x"), PermanentError)
    assert isinstance(graph_adapter.translate(APIError("no", 403, None), "graph.x"), PermanentError)
    assert isinstance(graph_adapter.translate(APIError("gw", 504, None), "graph.x"), RetryableError)
    with pytest.raises(KeyError):  # not a vendor error: a bug, never disguised
        graph_adapter.translate(KeyError("x"), "graph.x")


# --- construction ----------------------------------------------------------------------------
def test_from_config_uses_a_static_token_off_graph(emu, monkeypatch):
    for var in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    cfg = GraphConfig(base_url=emu.base_url, organizer=ORGANIZER)

    async def body():
        async with GraphCalendar.from_config(cfg, emulator=False, retry_delay=0) as cal:
            return await cal.create(request())

    assert asyncio.run(body()).id == emu.events()[0]["id"]


def test_from_config_for_graph_needs_azure_credentials(monkeypatch):
    from runtime.domain.errors import ConfigError

    for var in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="AZURE_TENANT_ID"):
        GraphCalendar.from_config(GraphConfig(organizer=ORGANIZER), emulator=False)


# --- hideAttendees ------------------------------------------------------------------------------
def _graph_get(emu, path):
    import json
    import urllib.request

    req = urllib.request.Request(f"{emu.base_url}/users/{ORGANIZER}/{path}",
                                 headers={"Authorization": "Bearer test-token"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def test_the_event_hides_its_attendees_and_graph_returns_the_property(emu):
    hidden = run(emu, lambda cal: cal.create(request("CHG-H")))
    assert _graph_get(emu, f"events/{hidden.id}")["hideAttendees"] is True
    shown = run(emu, lambda cal: cal.create(dataclasses.replace(request("CHG-S"), hide_attendees=False)))
    assert _graph_get(emu, f"events/{shown.id}")["hideAttendees"] is False
    # a move keeps it hidden: the PATCH sends the property again
    run(emu, lambda cal: cal.update(hidden.id, request("CHG-H")))
    assert _graph_get(emu, f"events/{hidden.id}")["hideAttendees"] is True
    assert [c for c in emu.calls() if c["method"] == "PATCH"]


def test_the_emulator_refuses_a_hide_attendees_that_is_not_a_boolean(emu):
    import json
    import urllib.error
    import urllib.request

    body = {"subject": "x", "start": {"dateTime": "2026-12-08T02:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-08T03:00:00", "timeZone": "UTC"}, "hideAttendees": "yes"}
    req = urllib.request.Request(f"{emu.base_url}/users/{ORGANIZER}/events", data=json.dumps(body).encode(),
                                 method="POST", headers={"Authorization": "Bearer t",
                                                         "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 400 and "hideAttendees" in err.value.read().decode()
    assert emu.events() == []
