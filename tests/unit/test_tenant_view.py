"""The tenant's view of the configuration (runtime/domain/tenant.py, issue 11): built from the
validated Config, the same facts as the pydantic models (one implementation), only its own
customer, frozen and picklable as Ray ships it."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from actors.messages import tenant_config_of
from runtime.domain.config import CustomerConfig, EmailConfig
from runtime.domain.tenant import TenantConfig, TenantEmail
from tests.conftest import memory_config


def _cfg():
    def mutate(data):
        data["customers"][1].update(region="eu-west-1", queue="nonprod-q", timezone="Europe/Berlin")
        data["customers"][0].pop("sender", None)
        data["email"]["show_affected_customers"] = True
    return memory_config(mutate)


def test_the_view_has_every_customer_field_and_the_email_fields_a_tenant_reads():
    assert _cfg().tenant_view("hts").tenant.fields == tuple(CustomerConfig.model_fields)
    assert {f.name for f in dataclasses.fields(TenantEmail)} <= set(EmailConfig.model_fields)


@pytest.mark.parametrize("code", ["hts", "htsnonprod"])
def test_the_view_answers_what_the_config_answers(code):
    cfg = _cfg()
    view = cfg.tenant_view(code)
    full, mine = cfg.customer(code), view.customer(code)
    for name in list(CustomerConfig.model_fields) + [
            "account_id", "queue_name", "dlq_name", "feedback_queue_name", "feedback_topic_name"]:
        assert getattr(mine, name) == getattr(full, name), name
    assert view.region_of(mine) == cfg.region_of(full) and view.sender_of(mine) == cfg.sender_of(full)
    assert (view.bucket, view.region, view.aws_endpoint_url, view.source) == (
        cfg.bucket, cfg.region, cfg.aws_endpoint_url, cfg.source)
    assert (view.email.sender, view.email.portal_base_url, view.email.show_affected_customers) == (
        cfg.email.sender, cfg.email.portal_base_url, True)
    for address in ("dana@example.com", " DANA@Example.com ", "alice@example.com"):
        assert mine.allows(address) == full.allows(address)


def test_per_customer_settings_override_the_defaults_in_the_view():
    cfg = _cfg()
    hts, nonprod = cfg.tenant_view("hts"), cfg.tenant_view("htsnonprod")
    assert hts.sender_of(hts.tenant) == cfg.email.sender            # no sender of its own
    assert nonprod.sender_of(nonprod.tenant) == "notifications@htsnonprod.example.com"
    assert nonprod.region_of(nonprod.tenant) == "eu-west-1" and hts.region_of(hts.tenant) == cfg.region
    assert nonprod.tenant.dlq_name == "nonprod-q-dlq" and hts.tenant.queue_name == "ttr-hts"
    assert not nonprod.tenant.allows("alice@example.com") and hts.tenant.allows("alice@example.com")


def test_a_view_holds_only_its_own_customer():
    cfg = _cfg()
    view = cfg.tenant_view("hts")
    assert view.customer_codes == ("hts",)
    with pytest.raises(KeyError):
        view.customer("htsnonprod")
    shipped = pickle.dumps(view)
    other = cfg.customer("htsnonprod")
    for secret in (other.ses_role_arn, other.external_id, other.name):
        assert secret.encode() not in shipped
    with pytest.raises(KeyError):
        cfg.tenant_view("nobody")


def test_the_view_is_frozen_and_survives_pickling():
    view = _cfg().tenant_view("htsnonprod")
    assert pickle.loads(pickle.dumps(view)) == view
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.bucket = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.tenant.restricted_recipients = ()  # type: ignore[misc]


def test_an_actor_given_a_config_or_a_dict_still_gets_its_view():
    cfg = _cfg()
    assert tenant_config_of(cfg.tenant_view("hts"), "hts") == cfg.tenant_view("hts")
    assert tenant_config_of(cfg, "hts") == cfg.tenant_view("hts")
    got = tenant_config_of(cfg.model_dump(), "htsnonprod")
    assert isinstance(got, TenantConfig) and got.tenant == cfg.tenant_view("htsnonprod").tenant
