"""AWS IAM Identity Center's identity store: the members of a group and their email addresses.

Read-only, in the runtime's own (management) account. Every page of every listing is read.
"""

from __future__ import annotations

from runtime.adapters.aws import AwsClients, aws_errors
from runtime.domain.errors import NotFound


class IdentityStore:
    def __init__(self, clients: AwsClients, store_id: str, region: str):
        self.store_id = store_id
        self.client = clients.client("identitystore", region)

    def group_id(self, name: str) -> str:
        """The id of the group whose display name is ``name`` (NotFound when there is none)."""
        try:
            with aws_errors("identitystore.GetGroupId"):
                resp = self.client.get_group_id(
                    IdentityStoreId=self.store_id,
                    AlternateIdentifier={"UniqueAttribute": {"AttributePath": "displayName",
                                                             "AttributeValue": name}})
        except NotFound:
            raise NotFound(f"identity store {self.store_id} has no group named {name!r}") from None
        return resp["GroupId"]

    def member_ids(self, group_id: str) -> list[str]:
        """The user ids of the group's direct members, every page."""
        out: list[str] = []
        token = None
        while True:
            kwargs = {"IdentityStoreId": self.store_id, "GroupId": group_id, "MaxResults": 100}
            if token:
                kwargs["NextToken"] = token
            with aws_errors("identitystore.ListGroupMemberships"):
                resp = self.client.list_group_memberships(**kwargs)
            for m in resp.get("GroupMemberships", []):
                user = (m.get("MemberId") or {}).get("UserId")
                if user:
                    out.append(user)
            token = resp.get("NextToken")
            if not token:
                return out

    def email_of(self, user_id: str) -> str | None:
        """The user's primary email (else the first one); None when the user has none."""
        with aws_errors("identitystore.DescribeUser"):
            user = self.client.describe_user(IdentityStoreId=self.store_id, UserId=user_id)
        emails = [e for e in user.get("Emails") or () if e.get("Value")]
        primary = [e for e in emails if e.get("Primary")]
        chosen = (primary or emails or [None])[0]
        return chosen["Value"] if chosen else None
