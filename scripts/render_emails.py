"""Render every kind of notification email to HTML and to PNG (headless Chromium, desktop and
390 px wide), to look at them as a recipient would.

    .venv/bin/python scripts/render_emails.py [OUT_DIR]      # default .ttr/emails (not committed)

The sample change has long free text, a reader in Tokyo, a join URL; one file per kind and width.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.emails import render_email  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WIDTHS = {"desktop": (1280, 1400), "phone": (390, 1800)}

CHANGE = {
    "changeId": "CHG-5b1f0c7e-2d2a-4c5e-9c1e-0d6a4f0b9a11",
    "title": "Patch the shared VPN gateways (firmware 17.4.2) & rotate the IKE certificates",
    "customers": ["hts", "acme"],
    "reason": "Security fix for CVE-2026-0001 <critical>.",
    "implementationPlan": "1. Drain the first gateway\n2. Upgrade its firmware\n3. Fail over and repeat",
    "customerImpact": "Up to 5 minutes of VPN reconnects per gateway; sessions resume on their own.",
    "rollbackPlan": "Boot the previous firmware image from the standby partition.",
    "testPlan": "Tunnels up on both gateways; synthetic probes green for 15 minutes.",
    "tickets": {"snow": "CHG0012345", "jira": "OPS-4242"},
    "schedule": {"implementationStart": "2026-12-08T07:00:00Z", "implementationEnd": "2026-12-08T09:30:00Z",
                 "timezone": "America/New_York"},
    "meeting": {"required": True},
}
ANNOUNCEMENT = {
    "changeId": "ANN-0c9d6f3e-41a2-4b7e-8d0f-6a1c2b3d4e5f", "kind": "announcement", "type": "finops",
    "title": "Q4 cost review: savings plans for compute & storage <draft numbers>",
    "customers": ["hts", "acme"],
    "summary": "Your Q4 cloud spend is 12% under budget; two savings plans could cut another 18%.",
    "content": "Highlights:\n- Compute: a 1-year savings plan covers 70% of the steady load.\n"
               "- Storage: 40 TB of S3 Standard is older than 90 days; Glacier Instant Retrieval fits.\n\n"
               "We walk through the numbers in the review meeting.",
    "links": [{"title": "Q4 cost report (PDF)", "url": "https://finops.example.com/reports/q4-2026.pdf"},
              {"title": "Savings plans explained", "url": "https://docs.aws.amazon.com/savingsplans/"}],
    "schedule": {"implementationStart": "2026-12-09T15:00:00Z", "implementationEnd": "2026-12-09T16:00:00Z",
                 "timezone": "Europe/Berlin"},
    "meeting": {"required": True, "title": "FinOps review Q4"},
}
JOIN = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NjQ4ZDk0YzYtZjE4OC00ZDk1LWI1ZjMtM2Y1%40thread.v2/0"


def samples():
    t = {"actor": "bob", "timestamp": "2026-11-30T09:12:00Z", "seq": 2}
    moved = {"implementationStart": "2026-12-10T07:00:00Z", "implementationEnd": "2026-12-10T08:30:00Z",
             "timezone": "America/New_York"}
    yield "approval_request", render_email("approval_request", CHANGE, transition={**t, "type": "submitted"},
                                           **common())
    yield "approval_updated", render_email("approval_request", CHANGE, first_request=False,
                                           transition={**t, "type": "updated", "fields": ["schedule", "reason"]},
                                           **common())
    yield "approved", render_email("approved", CHANGE, transition={**t, "type": "approved"},
                                   meeting={"joinUrl": JOIN}, **common())
    yield "approved_meeting_pending", render_email("approved", CHANGE, transition={**t, "type": "approved"},
                                                   meeting={"pending": True}, **common())
    yield "rescheduled", render_email("rescheduled", CHANGE, meeting={"joinUrl": JOIN}, **common(),
                                      transition={**t, "type": "rescheduled", "schedule": moved,
                                                  "previousSchedule": CHANGE["schedule"]})
    yield "cancelled", render_email("cancelled", CHANGE, transition={**t, "type": "cancelled",
                                                                     "note": "The vendor withdrew the firmware."},
                                    **common())
    yield "completed", render_email("completed", CHANGE, transition={**t, "type": "completed"}, **common())
    yield "removed", render_email("removed", CHANGE, transition={**t, "type": "updated"}, **common())
    yield "announcement_request", render_email("announcement_request", ANNOUNCEMENT,
                                               transition={**t, "type": "submitted", "actor": "alice"}, **common())
    yield "announcement", render_email("announcement", ANNOUNCEMENT, transition={**t, "type": "approved"},
                                       meeting={"joinUrl": JOIN}, **common())
    yield "announcement_cancelled", render_email("announcement_cancelled", ANNOUNCEMENT,
                                                 transition={**t, "type": "cancelled"}, **common())


def common():
    return {"customer_code": "hts", "customer_name": "HTS Production", "portal_base_url": "https://changes.example.com",
            "zone": "Asia/Tokyo"}


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for name, email in samples():
        page = out / f"{name}.html"
        page.write_text(email.html, encoding="utf-8")
        (out / f"{name}.txt").write_text(f"Subject: {email.subject}\n\n{email.text}", encoding="utf-8")
        for label, (w, h) in WIDTHS.items():
            png = out / f"{name}-{label}.png"
            subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-background-networking", "--hide-scrollbars",
                            f"--screenshot={png}", f"--window-size={w},{h}", page.as_uri()],
                           check=True, capture_output=True, timeout=120)
        print(f"{name}: {email.subject}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".ttr" / "emails"))
