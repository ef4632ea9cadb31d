"""A tenant's SQS queue (boto3)."""

from __future__ import annotations

from runtime.adapters.aws import AwsClients, aws_errors
from runtime.ports import QueueMessage


class SqsQueue:
    def __init__(self, clients: AwsClients, queue_name: str, *, resolve: bool = True):
        """``resolve``: look the queue's URL up now (a missing queue fails here); False looks
        it up at the first call (a tenant's DLQ, read only for its depth gauge: one round trip
        less in every tenant's start)."""
        self.sqs = clients.client("sqs")
        self.name = queue_name
        self._url: str | None = None
        if resolve:
            self._resolve()

    def _resolve(self) -> str:
        with aws_errors("sqs.GetQueueUrl"):
            self._url = self.sqs.get_queue_url(QueueName=self.name)["QueueUrl"]
        return self._url

    @property
    def url(self) -> str:
        return self._url or self._resolve()

    def receive(self, max_messages: int = 10, wait_seconds: int = 20) -> list[QueueMessage]:
        with aws_errors("sqs.ReceiveMessage"):
            resp = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=max(1, min(10, max_messages)),
                WaitTimeSeconds=wait_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"])
        out = []
        for m in resp.get("Messages", []):
            attrs = m.get("Attributes", {})
            out.append(QueueMessage(message_id=m["MessageId"], receipt=m["ReceiptHandle"], body=m.get("Body", ""),
                                    receive_count=int(attrs.get("ApproximateReceiveCount", 1)),
                                    sent_at=int(attrs.get("SentTimestamp", 0)) / 1000.0))
        return out

    def delete_batch(self, receipts: list[str]) -> list[str]:
        failed: list[str] = []
        for i in range(0, len(receipts), 10):
            chunk = receipts[i:i + 10]
            entries = [{"Id": str(n), "ReceiptHandle": r} for n, r in enumerate(chunk)]
            with aws_errors("sqs.DeleteMessageBatch"):
                resp = self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
            failed += [chunk[int(f["Id"])] for f in resp.get("Failed", [])]
        return failed

    def set_visibility(self, receipt: str, seconds: int) -> None:
        with aws_errors("sqs.ChangeMessageVisibility"):
            self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt,
                                               VisibilityTimeout=max(0, min(int(seconds), 43200)))

    def send(self, body: str) -> str:
        with aws_errors("sqs.SendMessage"):
            return self.sqs.send_message(QueueUrl=self.url, MessageBody=body)["MessageId"]

    def arn(self) -> str:
        with aws_errors("sqs.GetQueueAttributes"):
            return self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def depth(self) -> dict[str, int]:
        with aws_errors("sqs.GetQueueAttributes"):
            a = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return {"visible": int(a.get("ApproximateNumberOfMessages", 0)),
                "in_flight": int(a.get("ApproximateNumberOfMessagesNotVisible", 0))}
