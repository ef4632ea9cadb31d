"""Announcements as the API and the pages read them (a leaf): ``load``, ``search``, ``TYPE_NAMES``."""

from __future__ import annotations

from runtime.domain.announcements import KIND, TYPES, is_announcement
from runtime.domain.errors import InvalidInput, NotFound
from runtime.web._index import DEFAULT_PAGE, Filters, matches, paginate

TYPE_NAMES = {k: v[1] for k, v in TYPES.items()}


def load(portal, announcement_id: str) -> dict:
    obj = portal.lifecycle.show(announcement_id)
    if not is_announcement(obj):
        raise NotFound(f"no announcement {announcement_id} (it is a change: /changes/{announcement_id})")
    return obj


def search(portal, *, status: str | None = None, type_: str | None = None, customer: str | None = None,
           cursor: str | None = None, limit: int = DEFAULT_PAGE, snapshot=None):
    if customer and customer not in portal.cfg.customer_codes:
        raise InvalidInput(f"customer: unknown customer {customer!r} (configured: "
                           f"{', '.join(portal.cfg.customer_codes)})", field="customer")
    if type_ and type_ not in TYPES:
        raise InvalidInput(f"type: {type_!r} is not an announcement type; one of {', '.join(TYPES)}", field="type")
    f = Filters(status=status or None, customer=customer or None, kind=KIND)
    rows = (snapshot or portal.index.snapshot()).rows()
    return paginate([s for s, t in rows if matches(s, t, f) and (not type_ or s.get("type") == type_)],
                    cursor=cursor, limit=limit)
