"""The object store on S3 (boto3)."""

from __future__ import annotations

from typing import Iterator

from runtime.adapters.aws import AwsClients, aws_errors
from runtime.domain.errors import AlreadyExists, PreconditionFailed
from runtime.ports import ObjectInfo, StoredObject


class S3ObjectStore:
    def __init__(self, clients: AwsClients, bucket: str):
        self.bucket = bucket
        self.s3 = clients.client("s3")

    def get(self, key: str) -> StoredObject:
        with aws_errors("s3.GetObject"):
            resp = self.s3.get_object(Bucket=self.bucket, Key=key)
            body = resp["Body"].read()
        return StoredObject(key=key, body=body, etag=resp["ETag"])

    def put(self, key: str, body: bytes, *, if_match: str | None = None,
            if_none_match: bool = False) -> str:
        kwargs: dict = {"Bucket": self.bucket, "Key": key, "Body": body,
                        "ContentType": "application/json"}
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        try:
            with aws_errors("s3.PutObject"):
                resp = self.s3.put_object(**kwargs)
        except PreconditionFailed as exc:
            if if_none_match:
                raise AlreadyExists(f"{key} already exists", code="PreconditionFailed") from exc
            raise
        return resp["ETag"]

    def delete(self, key: str) -> None:
        with aws_errors("s3.DeleteObject"):
            self.s3.delete_object(Bucket=self.bucket, Key=key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        with aws_errors("s3.ListObjectsV2"):
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for o in page.get("Contents", []):
                    yield ObjectInfo(key=o["Key"], etag=o["ETag"], size=o["Size"],
                                     last_modified=o["LastModified"])
