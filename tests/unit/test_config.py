"""Configuration validation (file reading included: tmp files only, no network)."""

import pytest
import yaml

from runtime.domain.config import load_config, parse_config
from runtime.domain.errors import ConfigError
from tests.conftest import BASE_CONFIG


def cfg(**over):
    data = yaml.safe_load(yaml.safe_dump(BASE_CONFIG))
    data.update(over)
    return data


def test_shipped_config_is_valid_and_has_two_customers():
    c = load_config("configs/local.yaml")
    assert len(c.customers) >= 2
    assert c.customer("hts").queue_name == "ttr-hts" and c.customer("hts").dlq_name == "ttr-hts-dlq"
    assert c.customer("hts").account_id == "111111111111"
    assert c.local.contacts["hts"]


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d.pop("bucket"), "bucket: Field required"),
    (lambda d: d["customers"][0].update(code="Bad Code"), "customers[0].code"),
    (lambda d: d["customers"][1].update(ses_role_arn="nope"), "customers[1].ses_role_arn"),
    (lambda d: d["customers"][0].update(max_send_rate=0), "customers[0].max_send_rate"),
    (lambda d: d["customers"][0].update(surprise=1), "customers[0].surprise: Extra inputs"),
    (lambda d: d["customers"].append(dict(d["customers"][0])), "duplicate code"),
    (lambda d: d["email"].update(sender="not-an-address"), "email.sender"),
    (lambda d: d["local"]["contacts"].update(zzz=[]), "local.contacts: unknown customer"),
    (lambda d: (d.pop("topics"), d["local"].update(topic_defaults={"aws-bogus": "OPT_IN"})),
     "local.topic_defaults"),
    (lambda d: d["local"].update(topic_defaults={"aws-approval": "OPT_IN"}), "local.topic_defaults: the topics' defaults"),
    (lambda d: d["topics"].pop(0), "topics: the runtime needs topic(s) ['aws-approval']"),
    (lambda d: d["topics"].append(dict(d["topics"][1])), "topics: topic(s) ['aws-announce'] listed twice"),
    (lambda d: d["topics"].append({"name": "bad name", "display": "x"}), "topics[8].name"),  # after the eight default topics
    (lambda d: d["topics"].append({"name": "x", "display": "x", "default": "MAYBE"}), "topics[8].default"),
    (lambda d: d["local"]["contacts"]["hts"][0]["topics"].update({"nope": "OPT_IN"}),
     "local.contacts.hts[0].topics: unknown topic(s) ['nope']"),
    (lambda d: d.update(identity_center={"identity_store_id": "d-1234567890", "mappings": [
        {"group": "g", "customer": "zzz", "topics": {"aws-approval": "OPT_IN"}}]}),
     "identity_center.mappings[0].customer: unknown customer 'zzz'"),
    (lambda d: d.update(identity_center={"identity_store_id": "d-1234567890", "mappings": [
        {"group": "g", "customer": "hts", "topics": {"aws-nope": "OPT_IN"}}]}),
     "identity_center.mappings[0].topics: unknown topic(s) ['aws-nope']"),
    (lambda d: d.update(identity_center={"identity_store_id": "nope!", "mappings": [
        {"group": "g", "customer": "hts", "topics": {"aws-approval": "OPT_IN"}}]}),
     "identity_center.identity_store_id"),
    (lambda d: d.update(customers=[]), "customers"),
    # tenant isolation: one role, one account, one ExternalId per customer
    (lambda d: d["customers"][1].update(ses_role_arn=d["customers"][0]["ses_role_arn"]),
     "customers: hts and htsnonprod use the same SES role (arn:aws:iam::111111111111:role/ttr-ses-sender"),
    (lambda d: d["customers"][1].update(ses_role_arn="arn:aws:iam::111111111111:role/another-role"),
     "customers: hts and htsnonprod use the same AWS account (111111111111"),
    (lambda d: d["customers"][1].update(external_id=d["customers"][0]["external_id"]),
     "customers: hts and htsnonprod use the same external_id"),
    (lambda d: d["customers"][0].update(external_id="has space"), "customers[0].external_id"),
])
def test_bad_config_names_the_field(mutate, fragment):
    data = cfg()
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data, "x.yaml")
    assert fragment in str(info.value)
    assert str(info.value).startswith("x.yaml: ")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("bucket: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML at line"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(scalar)


def test_env_var_selects_the_file(tmp_path, monkeypatch):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg(bucket="from-env-bucket")))
    monkeypatch.setenv("TTR_CONFIG", str(p))
    assert load_config().bucket == "from-env-bucket"


def test_whitelist_is_case_insensitive():
    c = parse_config(cfg())
    nonprod = c.customer("htsnonprod")
    assert nonprod.allows("DANA@example.com") and not nonprod.allows("gail@example.com")
    assert c.customer("hts").allows("anyone@example.com")


def test_topics_default_to_the_aws_and_announcement_topics_and_fold_the_old_topic_defaults():
    data = cfg()
    data.pop("topics")
    c = parse_config(data)
    assert c.topic_defaults == {"aws-approval": "OPT_OUT", "aws-announce": "OPT_IN", "aws-calendar": "OPT_OUT",
                                "cic-announce": "OPT_OUT", "finops-announce": "OPT_OUT",
                                "inner-announce": "OPT_OUT", "general-updates": "OPT_IN",
                                "announce-approval": "OPT_OUT"}
    assert c.topic_display("finops-announce") == "FinOps announcements"
    assert c.topic_display("aws-calendar") == "Change meetings"
    # an existing config with the old local.topic_defaults keeps working: its defaults win
    data["local"]["topic_defaults"] = {"aws-calendar": "OPT_IN"}
    c = parse_config(data)
    assert c.topic_defaults["aws-calendar"] == "OPT_IN" and c.topic_defaults["aws-announce"] == "OPT_IN"


def test_configured_topics_extend_the_list_with_config_entries_only():
    data = cfg()
    data["topics"].append({"name": "sec-advisories", "display": "Security advisories", "default": "OPT_IN"})
    data["local"]["contacts"]["hts"][0]["topics"]["sec-advisories"] = "OPT_OUT"
    c = parse_config(data)
    assert list(c.topic_defaults) == ["aws-approval", "aws-announce", "aws-calendar", "cic-announce",
                                      "finops-announce", "inner-announce", "general-updates",
                                      "announce-approval", "sec-advisories"]
    assert c.topic_display("sec-advisories") == "Security advisories"
