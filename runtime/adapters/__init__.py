"""Adapters: the real implementations of the ports (boto3 for AWS, msgraph-sdk for Graph).

Vendor exceptions stop here; callers see only ``runtime.domain.errors``.
"""
