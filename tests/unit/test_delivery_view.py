"""The delivery read model: every contact with what happened, from the ledger (pure)."""

from runtime.services.delivery import contact_outcomes, delivery

NOW = "2026-11-28T12:00:00Z"


def test_contact_outcomes_come_from_the_ledger_sent_first_then_failed_then_skipped():
    ledger = {"recipients": {"b@x": {"status": "sent"}, "a@x": {"status": "failed", "error": "MessageRejected"}},
              "skipped": {"c@x": "unsubscribed_all", "d@x": "not_allowed", "e@x": "some_new_reason"}}
    rows = contact_outcomes(ledger)
    assert [(r["email"], r["outcome"], r["why"]) for r in rows] == [
        ("b@x", "sent", ""), ("a@x", "failed", "MessageRejected"),
        ("c@x", "skipped", "unsubscribed from everything"),
        ("d@x", "skipped", "not on this customer's allow-list"),
        ("e@x", "skipped", "some_new_reason")]  # an unknown code is shown as it is
    # sent on a retry after being skipped: what happened last wins
    assert contact_outcomes({"recipients": {"c@x": {"status": "sent"}}, "skipped": {"C@x": "opted_out"}}) == [
        {"email": "c@x", "outcome": "sent", "reason": "", "why": "", "after": ""}]
    assert contact_outcomes({}) == []


def test_contact_outcomes_say_what_ses_reported_after_a_send():
    ledger = {"recipients": {"a@x": {"status": "sent"}, "b@x": {"status": "sent"}},
              "feedback": {"recipients": {"a@x": [{"kind": "delivery"}, {"kind": "bounce", "permanent": True}],
                                          "b@x": [{"kind": "delivery"}]}}}
    assert [(r["email"], r["after"]) for r in contact_outcomes(ledger)] == [
        ("a@x", "bounced (hard)"), ("b@x", "delivered")]


def test_a_removed_customer_shows_its_removal_notice():
    change = {"changeId": "CHG-1", "customers": ["a"], "status": "submitted", "modifications": [
        {"type": "submitted", "seq": 1, "customers": ["a", "b"], "timestamp": NOW},
        {"type": "processed", "key": "processed:b:1", "customer": "b", "transition": 1, "topic": "aws-approval",
         "transitionType": "submitted", "emailsSent": 1},
        {"type": "updated", "seq": 2, "customers": ["a"], "timestamp": NOW, "removedCustomers": ["b"]},
        {"type": "processed", "key": "processed:b:2", "customer": "b", "transition": 2, "topic": "aws-approval",
         "transitionType": "removed", "emailsSent": 1}]}
    ledgers = {("b", 2): {"recipients": {"ops@b": {"status": "sent"}}, "skipped": {"x@b": "default_opt_out"}}}
    [row] = [r for r in delivery(change, {"b": "B Corp"}, ledgers) if r["customer"] == "b"]
    assert row["state"] == "removed"
    assert [(s["seq"], s["type"], s["state"]) for s in row["steps"]] == [(1, "submitted", "sent"),
                                                                         (2, "removed", "sent")]
    assert [c["outcome"] for c in row["steps"][1]["contacts"]] == ["sent", "skipped"]
