"""Tenant isolation at the AWS edge: each customer's role is assumed with that customer's
ExternalId (seen on the wire through a botocore hook, against the moto server)."""

from __future__ import annotations

from runtime.adapters.aws import AwsClients
from runtime.adapters.ses import TenantSes
from runtime.provisioning.bootstrap import assume_customer


def test_every_assume_role_sends_the_customers_external_id(stack):
    clients = AwsClients(stack.cfg.region, stack.cfg.aws_endpoint_url)
    sent: list[dict] = []
    clients.add_hook("provide-client-params.sts.AssumeRole", lambda params, **_: sent.append(dict(params)))
    for c in stack.cfg.customers:
        assert c.external_id, "configs/local.yaml gives every customer an external_id"
        TenantSes(clients, stack.cfg, c).list_contacts(c.contact_list)      # the runtime's path
        assume_customer(clients, c, f"ttr-test-{c.code}")                  # provision / doctor
    assert [(p["RoleArn"], p["ExternalId"]) for p in sent] == [
        (c.ses_role_arn, c.external_id) for c in stack.cfg.customers for _ in range(2)]
    assert all(p["RoleSessionName"].startswith("ttr-") for p in sent)


def test_without_an_external_id_none_is_sent(stack):
    c = stack.cfg.customers[0].model_copy(update={"external_id": None})
    clients = AwsClients(stack.cfg.region, stack.cfg.aws_endpoint_url)
    sent: list[dict] = []
    clients.add_hook("provide-client-params.sts.AssumeRole", lambda params, **_: sent.append(dict(params)))
    assume_customer(clients, c, "ttr-test")
    assert len(sent) == 1 and "ExternalId" not in sent[0]
