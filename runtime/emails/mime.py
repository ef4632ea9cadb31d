"""One email as a MIME message, for SES ``SendEmail`` with ``Raw`` content (pure).

Used when an email carries a calendar file: multipart/mixed with a multipart/alternative
(text, HTML) and a ``text/calendar`` part. SES still applies ``ListManagementOptions`` to a raw
message sent through SendEmail (its one-click List-Unsubscribe headers, and the substitution of
``{{amazonSESUnsubscribeUrl}}`` in the body): so the text and HTML parts are quoted-printable,
never base64, and the templates keep the placeholder on a short line of its own, so that it
reaches SES verbatim and unfolded.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from functools import lru_cache
from typing import Mapping

from runtime.emails.ics import FILENAME, METHOD


def build_mime(*, sender: str, to: str, subject: str, text: str, html: str,
               calendar: str | None = None, headers: Mapping[str, str] | None = None) -> bytes:
    """The message for one recipient. Everything but ``To``, ``Date`` and the extra ``headers``
    (ASCII, e.g. X-TTR-Ref) is built once per distinct content (one per reader's zone) and
    reused: quoted-printable encoding is slow."""
    extra = b""
    for name, value in (headers or {}).items():
        line = f"{name}: {value}"
        if not line.isascii() or "\r" in line or "\n" in line:
            raise ValueError(f"header {name!r}: only one line of ASCII can be added")
        extra += line.encode("ascii") + b"\r\n"
    if not to.isascii():  # an internationalised address: let the email package encode it
        return extra + _serialise(sender, subject, text, html, calendar, to)
    head = f"To: {to}\r\nDate: {formatdate(usegmt=True)}\r\n".encode("ascii")
    return extra + head + _serialise(sender, subject, text, html, calendar, None)


@lru_cache(maxsize=16)
def _serialise(sender: str, subject: str, text: str, html: str, calendar: str | None,
               to: str | None) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    if to is not None:
        msg["To"] = to
        msg["Date"] = formatdate(usegmt=True)
    msg["Subject"] = subject
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    if calendar is not None:
        msg.make_mixed()
        msg.add_attachment(calendar.encode("utf-8"), maintype="text", subtype="calendar",
                           filename=FILENAME, params={"method": METHOD, "charset": "utf-8"})
    return msg.as_bytes()
