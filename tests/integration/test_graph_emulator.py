"""The local Graph emulator, over real HTTP (urllib / http.client only)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from runtime.local.graph_emulator import GraphEmulator
from tests.conftest import GRAPH_ORGANIZER as ORGANIZER
from tests.conftest import wait_for

PROP_ID = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name ChangeId"
TOKEN = "local-token"


@pytest.fixture()
def emu(graph_emulator):
    status, _, _ = call(graph_emulator, "POST", "/_emulator/reset", token=None)
    assert status == 200
    return graph_emulator


def call(emu, method, path, body=None, token=TOKEN, timeout=5.0, raw=None):
    """-> (status, headers, parsed JSON or None). `path` is relative to the root URL, or absolute."""
    url = path if path.startswith("http") else emu.root_url + path
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, headers, payload = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, headers, payload = err.code, err.headers, err.read()
    return status, headers, (json.loads(payload) if payload else None)


def event_body(subject="Change CHG-1", change_id="CHG-1", tx=None, attendees=1, **extra):
    body = {
        "subject": subject,
        "body": {"contentType": "html", "content": "<p>Maintenance window</p>"},
        "start": {"dateTime": "2030-05-01T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-05-01T11:00:00", "timeZone": "UTC"},
        "location": {"displayName": "Teams"},
        "attendees": [{"emailAddress": {"address": f"a{i}@example.com", "name": f"A {i}"},
                       "type": "required"} for i in range(attendees)],
        "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness",
        "singleValueExtendedProperties": [{"id": PROP_ID, "value": change_id}],
    }
    if tx is not None:
        body["transactionId"] = tx
    body.update(extra)
    return body


def events_path(user=ORGANIZER):
    return f"/v1.0/users/{quote(user)}/events"


def create(emu, **kw):
    status, _, ev = call(emu, "POST", events_path(), event_body(**kw))
    assert status == 201, ev
    return ev


def by_change(change_id, expand=False):
    flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{PROP_ID}' and ep/value eq '{change_id}')"
    q = "?$filter=" + quote(flt)
    if expand:
        q += "&$expand=" + quote(f"singleValueExtendedProperties($filter=id eq '{PROP_ID}')")
    return events_path() + q


# --- auth and routing -------------------------------------------------------------------------
def test_requires_a_bearer_token(emu):
    for token in (None, ""):
        status, headers, body = call(emu, "GET", events_path(), token=token)
        assert status == 401
        assert headers["Content-Type"].startswith("application/json")
        assert body["error"]["code"] == "InvalidAuthenticationToken"
    status, _, body = call(emu, "POST", events_path(), event_body(), token=None)
    assert status == 401
    assert emu.events() == []


def test_unknown_routes_answer_404_graph_error(emu):
    for path in ("/v1.0/users/x/mailFolders", "/v1.0/me/events/abc/decline/x", "/nothing"):
        status, _, body = call(emu, "GET", path)
        assert status == 404, path
        assert "code" in body["error"]
    status, _, body = call(emu, "GET", "/_emulator/nothing", token=None)
    assert status == 404 and "error" in body


# --- create / get -----------------------------------------------------------------------------
def test_create_then_get(emu):
    ev = create(emu, tx="tx-1")
    assert ev["id"] and ev["iCalUId"] and ev["webLink"]
    assert ev["createdDateTime"].endswith("Z") and ev["lastModifiedDateTime"]
    assert ev["organizer"]["emailAddress"]["address"] == ORGANIZER
    assert ev["onlineMeeting"]["joinUrl"] == \
        f"https://teams.example.invalid/l/meetup-join/{ev['id']}"
    assert ev["transactionId"] == "tx-1"
    assert "singleValueExtendedProperties" not in ev  # as Graph: only when expanded

    status, headers, got = call(emu, "GET", f"{events_path()}/{ev['id']}")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert got["id"] == ev["id"]
    assert got["subject"] == "Change CHG-1"
    assert got["start"] == {"dateTime": "2030-05-01T10:00:00", "timeZone": "UTC"}
    assert [a["emailAddress"]["address"] for a in got["attendees"]] == ["a0@example.com"]
    assert got["isCancelled"] is False
    assert "singleValueExtendedProperties" not in got

    status, _, got = call(emu, "GET", f"{events_path()}/{ev['id']}?$expand="
                          + quote(f"singleValueExtendedProperties($filter=id eq '{PROP_ID}')"))
    assert status == 200
    assert got["singleValueExtendedProperties"] == [{"id": PROP_ID, "value": "CHG-1"}]

    [seen] = call(emu, "GET", "/_emulator/events", token=None)[2]
    assert seen["id"] == ev["id"] and seen["mailbox"] == ORGANIZER
    assert seen["cancelled"] is False and seen["deleted"] is False
    assert seen["updateCount"] == 0 and seen["cancelCount"] == 0
    assert seen["singleValueExtendedProperties"] == [{"id": PROP_ID, "value": "CHG-1"}]
    assert seen["body"]["content"] == "<p>Maintenance window</p>"
    assert seen["location"]["displayName"] == "Teams"
    assert emu.events() == [seen]


def test_get_unknown_event_is_404(emu):
    status, _, body = call(emu, "GET", f"{events_path()}/AAMkdoesnotexist")
    assert status == 404 and body["error"]["code"] == "ErrorItemNotFound"


@pytest.mark.parametrize("bad", [
    {"subject": None},
    {"start": None},
    {"end": {"dateTime": "2030-05-01T11:00:00"}},
    {"start": {"timeZone": "UTC"}},
    {"start": {"dateTime": "not a date", "timeZone": "UTC"}},
    {"attendees": [{"emailAddress": {}}]},
])
def test_create_validates(emu, bad):
    body = event_body()
    for k, v in bad.items():
        if v is None:
            body.pop(k)
        else:
            body[k] = v
    status, _, err = call(emu, "POST", events_path(), body)
    assert status == 400 and err["error"]["code"] == "ErrorInvalidRequest"
    assert emu.events() == []


def test_bad_json_is_400(emu):
    status, _, err = call(emu, "POST", events_path(), raw=b"{not json")
    assert status == 400 and err["error"]["code"] == "ErrorInvalidRequest"
    status, _, err = call(emu, "POST", events_path(), raw=b"[1, 2]")
    assert status == 400


def test_more_than_500_attendees_is_rejected(emu):
    status, _, err = call(emu, "POST", events_path(), event_body(attendees=501))
    assert status == 400 and err["error"]["code"] == "ErrorTooManyAttendees"
    assert emu.events() == []
    ev = create(emu, attendees=500)
    assert len(ev["attendees"]) == 500
    status, _, err = call(emu, "PATCH", f"{events_path()}/{ev['id']}",
                          {"attendees": event_body(attendees=501)["attendees"]})
    assert status == 400 and err["error"]["code"] == "ErrorTooManyAttendees"


# --- transactionId de-duplication ---------------------------------------------------------------
def test_transaction_id_deduplicates(emu):
    first = create(emu, tx="chg-1-meeting")
    status, _, again = call(emu, "POST", events_path(),
                            event_body(subject="retried", tx="chg-1-meeting"))
    assert status in (200, 201)
    assert again["id"] == first["id"]
    assert again["subject"] == "Change CHG-1"  # the existing event, untouched
    events = call(emu, "GET", "/_emulator/events", token=None)[2]
    assert len(events) == 1
    posts = [c for c in call(emu, "GET", "/_emulator/calls", token=None)[2] if c["method"] == "POST"]
    assert len(posts) == 2

    # another transactionId, or another mailbox, is a different event
    other = create(emu, tx="chg-2-meeting")
    assert other["id"] != first["id"]
    status, _, elsewhere = call(emu, "POST", events_path("someone@example.com"),
                                event_body(tx="chg-1-meeting"))
    assert status == 201 and elsewhere["id"] != first["id"]
    assert len(emu.events()) == 3


def test_concurrent_duplicate_creates_make_one_event(emu):
    import threading

    ids, errors = [], []

    def post():
        try:
            ids.append(call(emu, "POST", events_path(), event_body(tx="racy"))[2]["id"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not errors and len(set(ids)) == 1 and len(ids) == 8
    assert len(emu.events()) == 1


# --- $filter, $expand, paging ---------------------------------------------------------------------
def test_filter_on_extended_property(emu):
    ev = create(emu, change_id="CHG-1")
    create(emu, change_id="CHG-2", subject="other")

    status, _, page = call(emu, "GET", by_change("CHG-1"))
    assert status == 200
    assert [e["id"] for e in page["value"]] == [ev["id"]]
    assert "singleValueExtendedProperties" not in page["value"][0]
    assert "@odata.nextLink" not in page

    status, _, page = call(emu, "GET", by_change("CHG-1", expand=True))
    assert page["value"][0]["singleValueExtendedProperties"] == [{"id": PROP_ID, "value": "CHG-1"}]

    status, _, page = call(emu, "GET", by_change("CHG-404"))
    assert status == 200 and page["value"] == []


def test_filter_is_tolerant_of_case_and_whitespace(emu):
    ev = create(emu, change_id="it's")
    flt = (f"  singleValueExtendedProperties/any( x :x/value eq 'it''s'  AND  x/id eq "
           f"'{PROP_ID.upper()}' ) ")
    status, _, page = call(emu, "GET", events_path() + "?%24filter=" + quote(flt))
    assert status == 200 and [e["id"] for e in page["value"]] == [ev["id"]]


@pytest.mark.parametrize("query", [
    "$filter=" + quote("subject eq 'x'"),
    "$filter=" + quote("singleValueExtendedProperties/Any(ep: ep/id eq 'a')"),
    "$filter=" + quote("singleValueExtendedProperties/Any(ep: other/id eq 'a' and ep/value eq 'b')"),
    "$expand=attachments",
    "$orderby=start/dateTime",
    "$top=0",
    "$top=abc",
])
def test_unsupported_queries_are_400(emu, query):
    status, _, err = call(emu, "GET", events_path() + "?" + query)
    assert status == 400, err
    assert err["error"]["code"].startswith("ErrorInvalidUrlQuery")


def test_paging_follows_next_link(emu):
    made = [create(emu, subject=f"s{i}", change_id="same")["id"] for i in range(23)]
    create(emu, change_id="different")

    def collect(url):
        ids, pages = [], 0
        while url:
            status, _, page = call(emu, "GET", url)
            assert status == 200
            assert len(page["value"]) <= 10
            ids += [e["id"] for e in page["value"]]
            url = page.get("@odata.nextLink")
            pages += 1
            assert pages < 20
        return ids, pages

    ids, pages = collect(emu.root_url + by_change("same", expand=True))
    assert ids == made and pages == 3

    status, _, first = call(emu, "GET", by_change("same", expand=True))
    assert len(first["value"]) == 10
    nxt = first["@odata.nextLink"]
    assert nxt.startswith(emu.base_url)
    status, _, second = call(emu, "GET", nxt)  # the nextLink keeps $filter and $expand
    assert all(e["singleValueExtendedProperties"][0]["value"] == "same" for e in second["value"])

    ids, pages = collect(emu.root_url + events_path() + "?$top=5")
    assert len(ids) == 24 and pages == 5


# --- patch / cancel / delete ----------------------------------------------------------------------
def test_patch_merges_and_bumps_update_count(emu):
    ev = create(emu)
    url = f"{events_path()}/{ev['id']}"
    new_start = {"dateTime": "2030-06-01T10:00:00", "timeZone": "UTC"}
    status, _, patched = call(emu, "PATCH", url, {
        "start": new_start, "end": {"dateTime": "2030-06-01T12:00:00", "timeZone": "UTC"},
        "attendees": [{"emailAddress": {"address": "b@example.com"}, "type": "required"}],
        "id": "ignored",
    })
    assert status == 200
    assert patched["id"] == ev["id"]
    assert patched["start"] == new_start and patched["subject"] == ev["subject"]
    assert [a["emailAddress"]["address"] for a in patched["attendees"]] == ["b@example.com"]
    assert patched["lastModifiedDateTime"] >= ev["lastModifiedDateTime"]
    assert patched["onlineMeeting"] == ev["onlineMeeting"]

    call(emu, "PATCH", url, {"subject": "renamed"})
    [seen] = emu.events()
    assert seen["updateCount"] == 2 and seen["subject"] == "renamed"

    status, _, err = call(emu, "PATCH", url, {"start": {"dateTime": "2030-06-01T10:00:00"}})
    assert status == 400
    status, _, _ = call(emu, "PATCH", f"{events_path()}/AAMknope", {"subject": "x"})
    assert status == 404


def test_cancel_answers_202_and_marks_cancelled(emu):
    ev = create(emu)
    url = f"{events_path()}/{ev['id']}/cancel"
    status, headers, body = call(emu, "POST", url, {"Comment": "change cancelled"})
    assert status == 202 and body is None
    [seen] = call(emu, "GET", "/_emulator/events", token=None)[2]
    assert seen["cancelled"] is True and seen["cancelCount"] == 1
    assert seen["cancelComments"] == ["change cancelled"]
    status, _, got = call(emu, "GET", f"{events_path()}/{ev['id']}")
    assert status == 200 and got["isCancelled"] is True

    status, _, _ = call(emu, "POST", url)  # no body: still fine, and counted
    assert status == 202
    assert emu.events()[0]["cancelCount"] == 2

    status, _, err = call(emu, "POST", f"{events_path()}/AAMknope/cancel", {"Comment": "x"})
    assert status == 404 and err["error"]["code"] == "ErrorItemNotFound"


def test_delete_then_get_is_404(emu):
    ev = create(emu, tx="tx-del")
    url = f"{events_path()}/{ev['id']}"
    status, headers, body = call(emu, "DELETE", url)
    assert status == 204 and body is None
    status, _, err = call(emu, "GET", url)
    assert status == 404 and err["error"]["code"] == "ErrorItemNotFound"
    assert call(emu, "GET", events_path())[2]["value"] == []
    assert call(emu, "POST", url + "/cancel", {})[0] == 404
    assert call(emu, "DELETE", url)[0] == 404
    [seen] = emu.events()
    assert seen["deleted"] is True
    # a deleted event no longer absorbs its transactionId
    again = create(emu, tx="tx-del")
    assert again["id"] != ev["id"]


# --- mailboxes --------------------------------------------------------------------------------
def test_me_is_an_alias_of_the_organizer(emu):
    status, _, ev = call(emu, "POST", "/v1.0/me/events", event_body(tx="via-me"))
    assert status == 201
    status, _, got = call(emu, "GET", f"/v1.0/users/{ORGANIZER.upper()}/events/{ev['id']}")
    assert status == 200 and got["id"] == ev["id"]
    status, _, dup = call(emu, "POST", events_path(), event_body(tx="via-me"))
    assert dup["id"] == ev["id"]
    status, _, got = call(emu, "GET", f"/v1.0/me/calendar/events/{ev['id']}")
    assert status == 200
    assert emu.events()[0]["mailbox"] == ORGANIZER

    # another mailbox does not see it
    status, _, _ = call(emu, "GET", f"/v1.0/users/other@example.com/events/{ev['id']}")
    assert status == 404
    assert call(emu, "GET", "/v1.0/users/other@example.com/events")[2]["value"] == []


# --- faults -----------------------------------------------------------------------------------
def test_fault_429_with_retry_after_then_success(emu):
    status, _, queued = call(emu, "POST", "/_emulator/faults",
                             {"status": 429, "count": 2, "retryAfter": 3}, token=None)
    assert status in (200, 201)
    for _ in range(2):
        status, headers, err = call(emu, "POST", events_path(), event_body(tx="t"))
        assert status == 429
        assert headers["Retry-After"] == "3"
        assert err["error"]["code"] == "TooManyRequests"
    assert emu.events() == []
    ev = create(emu, tx="t")
    assert len(emu.events()) == 1 and ev["id"]
    calls = call(emu, "GET", "/_emulator/calls", token=None)[2]
    assert [c["status"] for c in calls] == [429, 429, 201]
    assert all(c["method"] == "POST" and c["path"] == events_path() for c in calls)


def test_fault_503_and_queueing_in_order(emu):
    call(emu, "POST", "/_emulator/faults", {"status": 503, "count": 1}, token=None)
    call(emu, "POST", "/_emulator/faults", {"status": 429, "count": 1}, token=None)
    status, headers, err = call(emu, "GET", events_path())
    assert status == 503 and err["error"]["code"] == "ServiceUnavailable"
    assert "Retry-After" not in headers
    assert call(emu, "GET", events_path())[0] == 429
    assert call(emu, "GET", events_path())[0] == 200
    # test endpoints and unauthenticated calls do not consume faults
    call(emu, "POST", "/_emulator/faults", {"status": 503}, token=None)
    call(emu, "GET", "/_emulator/events", token=None)
    assert call(emu, "GET", events_path(), token=None)[0] == 401
    assert call(emu, "GET", events_path())[0] == 503


def test_delay_without_status_simulates_a_client_timeout(emu):
    call(emu, "POST", "/_emulator/faults", {"delay": 0.6, "count": 1}, token=None)
    started = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        call(emu, "POST", events_path(), event_body(tx="slow"), timeout=0.2)
    assert time.monotonic() - started < 0.6
    # the server carries on and creates it anyway: an ambiguous failure
    wait_for(lambda: len(emu.events()) == 1, what="the delayed create")
    status, _, page = call(emu, "GET", by_change("CHG-1"))
    assert len(page["value"]) == 1
    ev = create(emu, tx="slow")  # the retry is absorbed by the transactionId
    assert ev["id"] == page["value"][0]["id"] and len(emu.events()) == 1


def test_delay_with_status(emu):
    call(emu, "POST", "/_emulator/faults", {"status": 503, "delay": 0.3, "retryAfter": 0},
         token=None)
    started = time.monotonic()
    status, headers, _ = call(emu, "GET", events_path())
    assert status == 503 and headers["Retry-After"] == "0"
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("bad", [
    {"status": 500, "count": 1},
    {"status": 429, "count": 0},
    {"status": 429, "count": "2"},
    {"status": 429, "count": True},
    {"status": 429, "retryAfter": -1},
    {"status": 429, "delay": -1},
    {"retryAfter": 2},
    {},
    {"status": 429, "colour": "red"},
    [],
])
def test_bad_fault_body_is_400(emu, bad):
    status, _, err = call(emu, "POST", "/_emulator/faults", bad, token=None)
    assert status == 400 and "error" in err
    assert call(emu, "GET", "/_emulator/faults", token=None)[2] == []


def test_bad_fault_json_is_400(emu):
    status, _, _ = call(emu, "POST", "/_emulator/faults", raw=b"nope", token=None)
    assert status == 400


def test_reset_clears_events_faults_and_calls(emu):
    create(emu)
    call(emu, "POST", "/_emulator/faults", {"status": 429, "count": 5}, token=None)
    status, _, _ = call(emu, "POST", "/_emulator/reset", token=None)
    assert status == 200
    assert call(emu, "GET", "/_emulator/events", token=None)[2] == []
    assert call(emu, "GET", "/_emulator/faults", token=None)[2] == []
    assert call(emu, "GET", "/_emulator/calls", token=None)[2] == []
    assert call(emu, "GET", events_path())[0] == 200


# --- HTTP hygiene -----------------------------------------------------------------------------
def test_keep_alive_connection_serves_many_requests(emu):
    parts = urlsplit(emu.root_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    try:
        conn.request("POST", events_path(), json.dumps(event_body()), auth)
        resp = conn.getresponse()
        ev = json.loads(resp.read())
        assert resp.status == 201 and int(resp.getheader("Content-Length")) > 0
        sock = conn.sock
        # chunked request body, an error, a 202 and a 204 all on the same socket
        conn.request("PATCH", f"{events_path()}/{ev['id']}",
                     body=iter([b'{"subject": ', b'"chunked"}']), headers=auth, encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["subject"] == "chunked"
        conn.request("GET", events_path() + "/nope", headers={})
        resp = conn.getresponse()
        assert resp.status == 401 and resp.read()
        conn.request("POST", f"{events_path()}/{ev['id']}/cancel", "{}", auth)
        resp = conn.getresponse()
        assert resp.status == 202 and resp.read() == b""
        conn.request("DELETE", f"{events_path()}/{ev['id']}", headers=auth)
        resp = conn.getresponse()
        assert resp.status == 204 and resp.read() == b""
        conn.request("GET", "/_emulator/events")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())[0]["deleted"] is True
        assert conn.sock is sock  # never reconnected
    finally:
        conn.close()


def test_refuses_non_loopback_hosts():
    for host in ("0.0.0.0", "192.168.1.10", "example.com"):
        with pytest.raises(ValueError):
            GraphEmulator(host=host)


def test_start_stop_and_urls():
    emu = GraphEmulator()
    assert emu.base_url == f"http://127.0.0.1:{emu.port}/v1.0"
    assert emu.root_url == f"http://127.0.0.1:{emu.port}"
    with emu:
        assert call(emu, "GET", "/v1.0/me/events")[0] == 200
        # an injected delay does not hold up stop()
        emu.add_fault(delay=30)
        parts = urlsplit(emu.root_url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        conn.request("GET", "/v1.0/me/events", headers={"Authorization": "Bearer x"})
        wait_for(lambda: not emu._state.faults, what="the delayed call to start")
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 3
    conn.close()
    with pytest.raises(OSError):
        call(emu, "GET", "/v1.0/me/events", timeout=1)


def test_cli_prints_ready():
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "runtime.local.graph_emulator", "--port", "0"],
                            cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("ready http://127.0.0.1:") and line.endswith("/v1.0")
        base = line.split(" ", 1)[1]
        req = urllib.request.Request(base + "/me/events", headers={"Authorization": "Bearer x"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["value"] == []
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
