"""The API's request and response models (documentation and light typing; content is validated
by the lifecycle's own rules) and the helpers that build them, shared by ``_api`` (changes) and
``_announce`` (announcements). A leaf: it imports no router.
"""

from __future__ import annotations

from typing import Literal

from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field

from runtime.services.lifecycle import TransitionResult
from runtime.web._auth import API_TOKEN_DEFAULT_TTL, API_TOKEN_MAX_TTL
from runtime.web._http import etag_of


class Schedule(BaseModel):
    model_config = ConfigDict(extra="allow")
    implementationStart: str | None = Field(None, examples=["2026-12-08T02:00:00-05:00"])
    implementationEnd: str | None = Field(None, examples=["2026-12-08T04:00:00-05:00"])
    timezone: str | None = Field(None, examples=["America/New_York"])


class Meeting(BaseModel):
    model_config = ConfigDict(extra="allow")
    required: bool = False
    title: str | None = None
    durationMinutes: int | None = None
    location: str | None = None


class ChangeContent(BaseModel):
    """The fields a user sets. Unknown fields are kept as they are."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "title": "Patch the shared VPN gateways", "customers": ["hts", "htsnonprod"],
        "schedule": {"implementationStart": "2026-12-08T02:00:00-05:00",
                     "implementationEnd": "2026-12-08T04:00:00-05:00", "timezone": "America/New_York"},
        "reason": "Security fixes", "meeting": {"required": True}}]})
    changeId: str | None = Field(None, description="optional; generated as CHG-{uuid4} when absent")
    title: str | None = None
    customers: list[str] | None = None
    schedule: Schedule | None = None
    reason: str | None = None
    implementationPlan: str | None = None
    testPlan: str | None = None
    customerImpact: str | None = None
    rollbackPlan: str | None = None
    tickets: dict[str, str | None] | None = None
    meeting: Meeting | None = None


class TransitionBody(BaseModel):
    note: str | None = Field(None, max_length=2000, description="recorded with the transition")


class RescheduleBody(TransitionBody):
    start: str = Field(examples=["2026-12-09T02:00:00-05:00"])
    end: str = Field(examples=["2026-12-09T04:00:00-05:00"])
    timezone: str | None = None


class CommentBody(BaseModel):
    comment: str | None = Field(None, description="required: what should change, or the comment",
                                examples=["Please add the rollback plan for the secondary gateway."])


class ReviewEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["changes_requested", "comment"]
    key: str
    timestamp: str
    actor: str
    comment: str
    version: int = Field(description="the change's version the entry was made on")


class Reviews(BaseModel):
    changeId: str
    openRequest: ReviewEntry | None = Field(description="the request for changes not yet answered by an "
                                                        "update or a reschedule")
    items: list[ReviewEntry]


class RetriggerBody(BaseModel):
    customers: list[str] | None = None


class TokenBody(BaseModel):
    ttl: int = Field(API_TOKEN_DEFAULT_TTL, ge=60, le=API_TOKEN_MAX_TTL, description="seconds")
    label: str = Field("", max_length=100, description="what the token is for (shown in the token list)")


class TokenInfo(BaseModel):
    id: str
    label: str
    expiresAt: float
    createdAt: float
    current: bool = Field(description="the token this request came with")


class Triggers(BaseModel):
    written: list[str]
    failed: dict[str, str]


class TransitionOut(BaseModel):
    changeId: str
    action: str
    version: int
    status: str
    complete: bool = Field(description="false when a trigger could not be written (the archive holds the "
                                        "transition; POST .../retrigger finishes it)")
    triggers: Triggers


class Me(BaseModel):
    username: str
    displayName: str
    roles: list[str]
    source: str
    authenticatedBy: str
    csrfToken: str | None = None


class ChangeSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    changeId: str
    title: str
    status: str
    customers: list[str]
    createdAt: str
    createdBy: str


class ChangePage(BaseModel):
    items: list[ChangeSummary]
    total: int = Field(description="how many match the filters (all pages)")
    nextCursor: str | None = Field(description="pass as cursor for the next page; null on the last")


class Customer(BaseModel):
    code: str
    name: str


class DraftCreated(BaseModel):
    changeId: str


class Token(BaseModel):
    token: str
    tokenType: Literal["Bearer"] = "Bearer"
    expiresAt: float
    id: str = Field(description="for DELETE /api/tokens/{id}")


ALLOW_PAST = Query(False, alias="allowPast", description="accept a window that started already "
                                                         "(a change recorded after the fact)")


T_RESPONSES = {403: {"description": "no role for this action, or four-eyes"},
                404: {"description": "no such change"},
                409: {"description": "illegal transition from the current status"},
                412: {"description": "If-Match is stale"}, 428: {"description": "If-Match missing"}}


def result_out(response: Response, result: TransitionResult, status: int = 200) -> TransitionOut:
    response.status_code = status
    response.headers["ETag"] = etag_of(result.change)
    response.headers["Location"] = f"/api/changes/{result.change_id}"
    return TransitionOut(changeId=result.change_id, action=result.action, version=result.seq,
                         status=result.change["status"], complete=result.complete,
                         triggers=Triggers(written=result.triggers_written, failed=result.triggers_failed))


def note_of(body: TransitionBody | None) -> dict:
    return {"note": body.note} if body is not None and body.note else {}
