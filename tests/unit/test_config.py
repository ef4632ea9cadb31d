"""Configuration validation (file reading included: tmp files only, no network)."""

import pytest
import yaml

from runtime.config import load_config, parse_config
from runtime.errors import ConfigError
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
    (lambda d: d["local"]["topic_defaults"].update({"aws-bogus": "OPT_IN"}), "local.topic_defaults"),
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

