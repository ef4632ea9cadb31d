"""The embedded AWS emulator remembers moto's host -> backend lookup (runtime/local/aws_emulator.py).

Held to moto's behaviour: over real HTTP every service ttr uses still reaches its own backend, the
lookups went through the remembered path (moto still asks ``get_backend_for_host`` per request),
and each remembered answer is the one moto's own dispatcher gives for that host."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from runtime.adapters.aws import AwsClients

REGION = "us-east-1"


def test_every_service_ttr_uses_is_routed_to_its_backend(aws_emulator):
    clients = AwsClients(REGION, aws_emulator.endpoint_url)
    name = f"dispatch-{uuid.uuid4().hex[:8]}"

    s3 = clients.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"routed")
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"routed"

    sqs = clients.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="routed")
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"]
    assert [m["Body"] for m in got] == ["routed"]

    sns = clients.client("sns")
    arn = sns.create_topic(Name=name)["TopicArn"]
    # read back by its ARN: a listing is paged (100 a page) and the session's emulator holds more
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["TopicArn"] == arn

    sts = clients.client("sts")
    creds = sts.assume_role(RoleArn="arn:aws:iam::300000000099:role/ttr-ses-sender",
                            RoleSessionName=name)["Credentials"]
    assert creds["AccessKeyId"]

    ses = clients.client_with("sesv2", creds)
    identity = f"{name}.example.com"
    ses.create_email_identity(EmailIdentity=identity)
    assert ses.get_email_identity(EmailIdentity=identity)["IdentityType"] == "DOMAIN"
    # the role's account, not the caller's: sesv2 in moto keys its backend by the credentials
    with pytest.raises(ClientError) as caller_s:
        clients.client("sesv2").get_email_identity(EmailIdentity=identity)
    assert caller_s.value.response["Error"]["Code"] == "NotFoundException"

    remembered = aws_emulator.dispatcher.backend_for_host
    expected = {f"s3.{REGION}.amazonaws.com": "s3", f"sqs.{REGION}.amazonaws.com": "sqs",
                f"sns.{REGION}.amazonaws.com": "sns", f"sts.{REGION}.amazonaws.com": "sts", "sesv2": "sesv2"}
    assert {h: remembered.get(h) for h in expected} == expected


def test_a_remembered_answer_is_moto_s_own():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from runtime.local.aws_emulator import dispatcher_app

    ours, moto_own = dispatcher_app(), DomainDispatcherApplication(create_backend_app)
    hosts = [None, "moto_api", "sesv2", "instance_metadata", "s3.us-east-1.amazonaws.com",
             "sqs.eu-west-1.amazonaws.com", "sns.us-east-1.amazonaws.com", "sts.us-east-1.amazonaws.com",
             "email.us-east-1.amazonaws.com", "nothing.example"]
    for host in hosts:
        first, again = ours.get_backend_for_host(host), ours.get_backend_for_host(host)
        assert first == again == moto_own.get_backend_for_host(host), host
    assert set(ours.backend_for_host) == set(hosts)
