"""``ttr contacts``, ``ttr topics sync`` and ``ttr identity sync`` through the real CLI against
moto over HTTP, checking each customer's own SES (reached through its role, as the runtime does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import yaml

from runtime.adapters.aws import AwsClients
from runtime.domain.audience import MANAGED_BY, SYNC_MARK
from runtime.provisioning.bootstrap import assume_customer

SEEDED_HTS = {"alice@example.com", "bob@example.com", "carol@example.com", "chris@example.com"}


def tenant_ses(stack, code):
    customer = stack.cfg.customer(code)
    creds = assume_customer(stack.clients, customer, f"test-{code}")
    return stack.clients.client_with("sesv2", creds, stack.cfg.region_of(customer))


def contacts(stack, code) -> dict[str, dict]:
    """email -> {prefs, unsub, attrs} in that customer's own SES (GetContact: ListContacts has no
    attributes)."""
    ses = tenant_ses(stack, code)
    name = stack.cfg.customer(code).contact_list
    items = [ses.get_contact(ContactListName=name, EmailAddress=i["EmailAddress"])
             for i in ses.list_contacts(ContactListName=name)["Contacts"]]
    return {i["EmailAddress"]: {"prefs": {p["TopicName"]: p["SubscriptionStatus"] for p in i.get("TopicPreferences", [])},
                                "unsub": i.get("UnsubscribeAll", False),
                                "attrs": json.loads(i["AttributesData"]) if i.get("AttributesData") else {}}
            for i in items}


def kinds(out: str) -> list[str]:
    return [line.split(" ", 1)[0] for line in out.splitlines() if line.strip()]


@pytest.fixture()
def hooked(monkeypatch):
    """Add botocore hooks (the AwsClients.add_hook seam) to the clients the commands build."""
    import runtime.cli.audience as commands

    hooks: list[tuple[str, object]] = []
    real = commands._clients

    def build(cfg):
        clients = real(cfg)
        for event, handler in hooks:
            clients.add_hook(event, handler)
        return clients

    monkeypatch.setattr(commands, "_clients", build)
    return hooks


class _Resp:
    def __init__(self, status):
        self.status_code, self.headers, self.content, self.text = status, {}, b"", ""


def aws_error(status, code):
    return _Resp(status), {"Error": {"Code": code, "Message": f"injected {code}"},
                           "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}


# ---------------------------------------------------------------------------------------------
# contacts import


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_import_dry_run_then_import_then_only_unchanged(stack, run_cli, tmp_path):
    f = write(tmp_path, "c.csv", "email,topic:aws-approval,topic:aws-calendar\n"
                                 "new@example.com,OPT_IN,\n"
                                 "alice@example.com,OPT_OUT,OPT_IN\n"
                                 "bob@example.com,OPT_IN,OPT_IN\n"         # unsubscribed from everything
                                 "chris@example.com,,\n")
    ses, name = tenant_ses(stack, "hts"), stack.cfg.customer("hts").contact_list
    ses.update_contact(ContactListName=name, EmailAddress="alice@example.com", UnsubscribeAll=False,
                       TopicPreferences=[{"TopicName": "aws-calendar", "SubscriptionStatus": "OPT_IN"},
                                         {"TopicName": "aws-approval", "SubscriptionStatus": "OPT_IN"}],
                       AttributesData=json.dumps({"timezone": "Europe/Paris"}))
    before_hts, before_np = contacts(stack, "hts"), contacts(stack, "htsnonprod")

    code, out, err = run_cli("contacts", "import", f, "--customer", "hts", "--dry-run", "--config", stack.path)
    assert code == 0, err
    assert out.splitlines() == [
        "add new@example.com aws-approval=OPT_IN",
        "update alice@example.com aws-approval=OPT_OUT",
        "unchanged bob@example.com (unsubscribed from everything; not re-subscribed)",
        "unchanged chris@example.com"]
    assert "nothing was changed" in err
    assert contacts(stack, "hts") == before_hts

    code, out2, err = run_cli("contacts", "import", f, "--customer", "hts", "--config", stack.path)
    assert code == 0, err
    assert out2 == out                                   # the dry run said exactly this
    after = contacts(stack, "hts")
    assert after["new@example.com"]["prefs"] == {"aws-approval": "OPT_IN"}
    assert after["alice@example.com"]["prefs"] == {"aws-approval": "OPT_OUT", "aws-calendar": "OPT_IN"}
    assert after["alice@example.com"]["attrs"] == {"timezone": "Europe/Paris"}      # her attributes kept
    assert after["bob@example.com"] == before_hts["bob@example.com"] and after["bob@example.com"]["unsub"]
    assert contacts(stack, "htsnonprod") == before_np    # no leak into the other customer's account
    assert "new@example.com" not in contacts(stack, "htsnonprod")

    code, out3, _ = run_cli("contacts", "import", f, "--customer", "hts", "--config", stack.path)
    assert code == 0 and set(kinds(out3)) == {"unchanged"} and len(kinds(out3)) == 4


def test_a_bad_row_is_refused_whole_naming_the_line(stack, run_cli, tmp_path):
    before = contacts(stack, "hts")
    f = write(tmp_path, "c.csv", "email,topic:aws-approval\nfirst@example.com,OPT_IN\nsecond@example.com,YES\n")
    code, out, err = run_cli("contacts", "import", f, "--customer", "hts", "--config", stack.path)
    assert code == 2 and out == ""
    assert f"{f} line 3: topic aws-approval: 'YES' is not OPT_IN, OPT_OUT or empty" in err
    assert contacts(stack, "hts") == before                 # not even the good first row

    j = write(tmp_path, "c.json", '[\n {"email": "ok@example.com"},\n {"email": "bad address"}\n]\n')
    code, _, err = run_cli("contacts", "import", j, "--customer", "hts", "--config", stack.path)
    assert code == 2 and "line 3 (entry 2): 'bad address' is not an email address" in err
    assert contacts(stack, "hts") == before


def test_unknown_customer_and_unreadable_file_exit_2(stack, run_cli, tmp_path):
    code, _, err = run_cli("contacts", "list", "--customer", "nope", "--config", stack.path)
    assert code == 2 and "unknown customer 'nope'" in err
    code, _, err = run_cli("contacts", "import", tmp_path / "missing.csv", "--customer", "hts", "--config", stack.path)
    assert code == 2 and "cannot read" in err
    code, _, err = run_cli("contacts", "add", "x@example.com", "--customer", "hts", "--topic", "aws-nope=OPT_IN",
                           "--config", stack.path)
    assert code == 2 and "unknown topic 'aws-nope'" in err


def test_export_reimports_as_unchanged_and_json_import_works(stack, run_cli, tmp_path):
    for fmt in ("csv", "json"):
        code, out, err = run_cli("contacts", "export", "--customer", "hts", "--format", fmt, "--config", stack.path)
        assert code == 0, err
        f = write(tmp_path, f"export.{fmt}", out)
        code, out, err = run_cli("contacts", "import", f, "--customer", "hts", "--config", stack.path)
        assert code == 0, err
        assert kinds(out) == ["unchanged"] * len(SEEDED_HTS)
    j = write(tmp_path, "new.json", json.dumps([{"email": "j@example.com", "topics": {"aws-calendar": "OPT_IN"}}]))
    code, out, _ = run_cli("contacts", "import", j, "--customer", "htsnonprod", "--config", stack.path)
    assert code == 0 and out.strip() == "add j@example.com aws-calendar=OPT_IN"
    assert contacts(stack, "htsnonprod")["j@example.com"]["prefs"] == {"aws-calendar": "OPT_IN"}
    assert "j@example.com" not in contacts(stack, "hts")


def test_add_list_and_remove(stack, run_cli):
    code, out, err = run_cli("contacts", "add", "Zed@example.com", "--customer", "hts",
                             "--topic", "aws-approval=OPT_IN", "--config", stack.path)
    assert code == 0 and out.strip() == "add Zed@example.com aws-approval=OPT_IN", err
    code, out, _ = run_cli("contacts", "list", "--customer", "hts", "--json", "--config", stack.path)
    listed = {c["email"]: c for c in json.loads(out)}
    assert set(listed) == SEEDED_HTS | {"Zed@example.com"}
    assert listed["Zed@example.com"]["topics"] == {"aws-approval": "OPT_IN"} and listed["bob@example.com"]["unsubscribeAll"]
    code, out, _ = run_cli("contacts", "list", "--customer", "hts", "--config", stack.path)
    assert out.splitlines()[0].split()[:4] == ["EMAIL", "aws-approval", "aws-announce", "aws-calendar"]
    code, out, _ = run_cli("contacts", "remove", "zed@EXAMPLE.com", "--customer", "hts", "--config", stack.path)
    assert code == 0 and out.strip() == "remove Zed@example.com"
    assert "Zed@example.com" not in contacts(stack, "hts")
    code, _, err = run_cli("contacts", "remove", "zed@example.com", "--customer", "hts", "--config", stack.path)
    assert code == 2 and "is not a contact of hts" in err


def test_throttling_is_retried(stack, run_cli, tmp_path, hooked):
    injected = []

    def throttle(model=None, **_):
        if model.name == "CreateContact" and len(injected) < 2:
            injected.append(model.name)
            return aws_error(429, "TooManyRequestsException")
        return None

    hooked.append(("before-call.sesv2.*", throttle))
    f = write(tmp_path, "c.csv", "email,topic:aws-approval\nt@example.com,OPT_IN\n")
    code, out, err = run_cli("contacts", "import", f, "--customer", "hts", "--config", stack.path)
    assert code == 0, err
    assert injected == ["CreateContact", "CreateContact"] and out.strip() == "add t@example.com aws-approval=OPT_IN"
    assert contacts(stack, "hts")["t@example.com"]["prefs"] == {"aws-approval": "OPT_IN"}


def test_a_failure_part_way_says_what_was_and_was_not_written(stack, run_cli, tmp_path, hooked):
    def refuse_second(model=None, params=None, **_):
        if model.name == "CreateContact" and b"two@example.com" in (params or {}).get("body", b""):
            return aws_error(400, "AccessDeniedException")
        return None

    hooked.append(("before-call.sesv2.*", refuse_second))
    f = write(tmp_path, "c.csv", "email,topic:aws-approval\none@example.com,OPT_IN\ntwo@example.com,OPT_IN\n"
                                 "three@example.com,OPT_IN\n")
    code, out, err = run_cli("contacts", "import", f, "--customer", "hts", "--config", stack.path)
    assert code == 1
    assert out.strip() == "add one@example.com aws-approval=OPT_IN"
    assert "stopped at two@example.com" in err and "AccessDenied" in err
    assert "written: one@example.com\nNOT written: two@example.com, three@example.com" in err
    have = contacts(stack, "hts")
    assert "one@example.com" in have and "two@example.com" not in have and "three@example.com" not in have


# ---------------------------------------------------------------------------------------------
# topics sync


def test_topics_sync_makes_each_list_carry_exactly_the_configured_topics(stack, run_cli, tmp_path):
    ses = tenant_ses(stack, "hts")
    name = stack.cfg.customer("hts").contact_list
    topics = ses.get_contact_list(ContactListName=name)["Topics"]
    drifted = [dict(t, DisplayName="Old words") if t["TopicName"] == "aws-announce" else t for t in topics
               if t["TopicName"] != "aws-calendar"] + [
        {"TopicName": "legacy", "DisplayName": "x", "DefaultSubscriptionStatus": "OPT_IN"}]
    ses.update_contact_list(ContactListName=name, Topics=drifted)
    before_contacts = contacts(stack, "hts")

    data = yaml.safe_load(stack.path.read_text())
    data["topics"].append({"name": "sec-advisories", "display": "Security advisories", "default": "OPT_IN"})
    cfg = write(tmp_path, "more-topics.yaml", yaml.safe_dump(data))

    code, out, err = run_cli("topics", "sync", "--dry-run", "--config", cfg)
    assert code == 0, err
    assert ses.get_contact_list(ContactListName=name)["Topics"] == drifted       # dry run: nothing changed
    code, out2, err = run_cli("topics", "sync", "--config", cfg)
    assert code == 0 and out2 == out
    lines = out.splitlines()
    assert "hts: unchanged topic aws-approval ('Change approvals', default OPT_OUT)" in lines
    assert "hts: update topic aws-announce ('Change announcements', default OPT_IN); was 'Old words'" in lines
    assert "hts: add topic aws-calendar ('Change meetings', default OPT_OUT)" in lines
    assert "hts: remove topic legacy" in lines
    assert "htsnonprod: add topic sec-advisories ('Security advisories', default OPT_IN)" in lines
    got = {t["TopicName"]: (t["DisplayName"], t["DefaultSubscriptionStatus"])
           for t in ses.get_contact_list(ContactListName=name)["Topics"]}
    assert got == {"aws-approval": ("Change approvals", "OPT_OUT"), "aws-announce": ("Change announcements", "OPT_IN"),
                   "aws-calendar": ("Change meetings", "OPT_OUT"), "sec-advisories": ("Security advisories", "OPT_IN"),
                   **{t.name: (t.display, t.default) for t in stack.cfg.topics if t.name.startswith(("cic", "finops",
                                                                                                    "inner", "general",
                                                                                                    "announce"))}}
    assert "general-updates" in got and "announce-approval" in got  # the announcement topics too
    assert contacts(stack, "hts") == before_contacts                              # contacts untouched
    code, out3, _ = run_cli("topics", "sync", "--config", cfg)
    assert code == 0 and {line.split(" ")[1] for line in out3.splitlines()} == {"unchanged"}

    # doctor now agrees: against the original config the extra topic is drift (a warning)
    # (in a process of its own: the doctor runs an event loop, which a browser test's may not share)
    proc = subprocess.run([sys.executable, "-m", "runtime.cli.main", "doctor", "--customer", "hts", "--json",
                           "--config", str(stack.path)], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith("AZURE_")})  # loopback only
    check = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}["hts/contact-list"]
    assert check["status"] == "warn" and "remove topic sec-advisories" in check["message"]
    assert "ttr topics sync --customer hts" in check["fix"]


# ---------------------------------------------------------------------------------------------
# identity sync


def _with_identity(stack, tmp_path, store_id, mappings):
    data = yaml.safe_load(stack.path.read_text())
    data["identity_center"] = {"identity_store_id": store_id, "region": "us-east-1", "mappings": mappings}
    p = tmp_path / "identity.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_identity_sync_adds_members_is_idempotent_unsubscribes_leavers_and_keeps_own_choices(stack, run_cli, tmp_path):
    ids = AwsClients(stack.cfg.region, stack.cfg.aws_endpoint_url).client("identitystore")
    store = f"d-{uuid.uuid4().hex[:10]}"
    group = ids.create_group(IdentityStoreId=store, DisplayName="hts-approvers")["GroupId"]
    ids.create_group(IdentityStoreId=store, DisplayName="unmapped")
    users = {}
    # 101 members: more than one page of ListGroupMemberships (100 a page)
    emails = [f"m{i:03d}@example.com" for i in range(100)] + ["chris@example.com"]  # chris: a contact we did not create
    for e in emails:
        uid = ids.create_user(IdentityStoreId=store, UserName=e.split("@")[0], DisplayName=e,
                              Name={"GivenName": "M", "FamilyName": e},
                              Emails=[{"Value": e, "Type": "work", "Primary": True}])["UserId"]
        users[e] = uid
        ids.create_group_membership(IdentityStoreId=store, GroupId=group, MemberId={"UserId": uid})
    cfg = _with_identity(stack, tmp_path, store,
                         [{"group": "hts-approvers", "customer": "hts", "topics": {"aws-approval": "OPT_IN"}}])
    before_np = contacts(stack, "htsnonprod")

    code, dry, err = run_cli("identity", "sync", "--dry-run", "--config", cfg)
    assert code == 0, err
    assert "m000@example.com" not in contacts(stack, "hts")
    code, out, err = run_cli("identity", "sync", "--config", cfg)
    assert code == 0, err
    assert out == dry                                   # the dry run said exactly this
    lines = out.splitlines()
    assert "add m000@example.com aws-approval=OPT_IN" in lines and "add m099@example.com aws-approval=OPT_IN" in lines
    assert "unchanged chris@example.com (not created by identity sync; left as is)" in lines
    have = contacts(stack, "hts")
    assert all(have[e]["prefs"] == {"aws-approval": "OPT_IN"} for e in emails[:100])
    assert have["m042@example.com"]["attrs"][MANAGED_BY] == SYNC_MARK
    assert have["chris@example.com"]["prefs"] == {} and have["chris@example.com"]["attrs"] == {}
    assert contacts(stack, "htsnonprod") == before_np

    code, out, _ = run_cli("identity", "sync", "--config", cfg)
    assert code == 0 and set(kinds(out)) == {"unchanged"}

    # m001 opts out themselves; m002 leaves the group
    ses = tenant_ses(stack, "hts")
    name = stack.cfg.customer("hts").contact_list
    ses.update_contact(ContactListName=name, EmailAddress="m001@example.com",
                       TopicPreferences=[{"TopicName": "aws-approval", "SubscriptionStatus": "OPT_OUT"}],
                       UnsubscribeAll=False, AttributesData=json.dumps(have["m001@example.com"]["attrs"]))
    membership = ids.get_group_membership_id(IdentityStoreId=store, GroupId=group,
                                             MemberId={"UserId": users["m002@example.com"]})["MembershipId"]
    ids.delete_group_membership(IdentityStoreId=store, MembershipId=membership)

    code, out, err = run_cli("identity", "sync", "--config", cfg)
    assert code == 0, err
    lines = out.splitlines()
    assert "unsubscribe m002@example.com aws-approval" in lines
    assert "update m001@example.com (kept the person's own choice for aws-approval)" in lines
    have = contacts(stack, "hts")
    assert have["m001@example.com"]["prefs"] == {"aws-approval": "OPT_OUT"}
    assert have["m002@example.com"]["prefs"] == {"aws-approval": "OPT_OUT"}
    assert have["m003@example.com"]["prefs"] == {"aws-approval": "OPT_IN"}
    code, out, _ = run_cli("identity", "sync", "--config", cfg)
    assert code == 0 and set(kinds(out)) == {"unchanged"}


def test_identity_sync_without_configuration_or_with_an_unknown_group(stack, run_cli, tmp_path):
    code, _, err = run_cli("identity", "sync", "--config", stack.path)
    assert code == 2 and "identity_center is not configured" in err
    cfg = _with_identity(stack, tmp_path, f"d-{uuid.uuid4().hex[:10]}",
                         [{"group": "ghosts", "customer": "hts", "topics": {"aws-approval": "OPT_IN"}}])
    before = contacts(stack, "hts")
    code, _, err = run_cli("identity", "sync", "--config", cfg)
    assert code == 2 and "has no group named 'ghosts'" in err
    assert contacts(stack, "hts") == before


def test_topics_sync_failing_for_one_customer_says_which_were_synced(stack, run_cli, tmp_path, hooked):
    data = yaml.safe_load(stack.path.read_text())
    data["topics"][0]["display"] = "Approval requests"
    cfg = write(tmp_path, "renamed.yaml", yaml.safe_dump(data))
    calls = []

    def refuse_second_account(model=None, **_):
        if model.name == "UpdateContactList":
            calls.append(model.name)
            if len(calls) == 2:
                return aws_error(400, "AccessDeniedException")
        return None

    hooked.append(("before-call.sesv2.*", refuse_second_account))
    code, out, err = run_cli("topics", "sync", "--config", cfg)
    assert code == 1
    assert "topics sync stopped at htsnonprod" in err and "synced: hts; NOT synced: htsnonprod" in err
    assert "hts: update topic aws-approval ('Approval requests', default OPT_OUT); was 'Change approvals'" in out
    assert not any(line.startswith("htsnonprod:") for line in out.splitlines())
    shown = {code: {t["TopicName"]: t["DisplayName"] for t in tenant_ses(stack, code).get_contact_list(
        ContactListName=stack.cfg.customer(code).contact_list)["Topics"]}["aws-approval"] for code in ("hts", "htsnonprod")}
    assert shown == {"hts": "Approval requests", "htsnonprod": "Change approvals"}
