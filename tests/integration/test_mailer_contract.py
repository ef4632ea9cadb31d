"""The Mailer port's contract, run against both implementations, each seeded from the same
configuration: the tenant SES adapter on moto (seeded by the local bootstrap) and the in-memory
mailer (runtime/testing/memory_mailer.py) the handler's tests use."""

from __future__ import annotations

import pytest

from runtime.domain.errors import NotFound
from runtime.domain.recipients import Contact


@pytest.fixture(params=["ses", "memory"])
def mailer(request, tmp_path):
    """(mailer of customer hts, its contact list, the emails it sent: [(to, subject, sender)], config)."""
    if request.param == "memory":
        from runtime.testing.memory_mailer import MemoryMailer
        from tests.conftest import memory_config

        cfg = memory_config()
        m = MemoryMailer.for_customer(cfg, cfg.customer("hts"))
        return m, cfg.customer("hts").contact_list, lambda: [(s.to, s.subject, s.sender) for s in m.sent], cfg
    from runtime.adapters.ses import TenantSes
    from runtime.local.aws_emulator import AwsEmulator
    from tests.conftest import make_stack

    stack = make_stack(request.getfixturevalue("aws_emulator").endpoint_url, tmp_path)
    hts = stack.cfg.customer("hts")
    return (TenantSes(stack.clients, stack.cfg, hts), hts.contact_list,
            lambda: [(to, s.subject, s.source) for s in AwsEmulator.sent_emails() for to in s.to], stack.cfg)


def test_contacts_and_topic_defaults_are_the_seeded_ones(mailer):
    m, cl, _, cfg = mailer
    contacts = {c.email: c for c in map(Contact.from_ses, m.list_contacts(cl))}
    assert sorted(contacts) == ["alice@example.com", "bob@example.com", "carol@example.com", "chris@example.com"]
    assert contacts["alice@example.com"].preferences == {"aws-calendar": "OPT_IN", "aws-approval": "OPT_IN"}
    assert contacts["bob@example.com"].unsubscribe_all and not contacts["chris@example.com"].unsubscribe_all
    assert contacts["chris@example.com"].preferences == {}
    assert m.topic_defaults(cl) == {t.name: t.default for t in cfg.topics}
    assert m.topic_defaults(cl)["aws-approval"] == "OPT_OUT"


def test_attributes_of_a_contact_and_of_a_stranger(mailer):
    m, cl, _, _ = mailer
    assert m.contact_attributes(cl, "alice@example.com") == {}
    with pytest.raises(NotFound):
        m.contact_attributes(cl, "stranger@example.com")


def test_attributes_are_read_one_by_one_not_listed(mailer):
    m, cl, _, _ = mailer
    m.put_contact(cl, "zoe@example.com", preferences={"aws-announce": "OPT_IN"}, unsubscribe_all=False,
                  attributes={"timezone": "Europe/Berlin"}, create=True)
    assert m.contact_attributes(cl, "zoe@example.com") == {"timezone": "Europe/Berlin"}
    [listed] = [c for c in m.list_contacts(cl) if c["EmailAddress"] == "zoe@example.com"]
    assert Contact.from_ses(listed).preferences == {"aws-announce": "OPT_IN"}
    assert "AttributesData" not in listed        # ListContacts leaves them out: GetContact reads them
    m.put_contact(cl, "zoe@example.com", preferences={}, unsubscribe_all=True, attributes=None, create=False)
    [listed] = [c for c in m.list_contacts(cl) if c["EmailAddress"] == "zoe@example.com"]
    assert Contact.from_ses(listed).unsubscribe_all
    with pytest.raises(NotFound):
        m.put_contact(cl, "nobody@example.com", preferences={}, unsubscribe_all=False, attributes=None, create=False)


def test_send_returns_a_message_id_and_the_email_is_sent(mailer):
    import uuid

    m, cl, sent, _ = mailer
    subject = f"Contract {uuid.uuid4().hex[:8]}"
    mid = m.send(sender="notifications@hts.example.com", to="alice@example.com", subject=subject,
                 html="<p>hi</p>", text="hi", contact_list=cl, topic="aws-announce",
                 headers={"X-TTR-Ref": "CHG-1/hts/1"})
    assert isinstance(mid, str) and mid
    assert ("alice@example.com", subject, "notifications@hts.example.com") in sent()
