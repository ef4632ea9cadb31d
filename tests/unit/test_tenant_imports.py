"""What a tenant's start imports: email rendering (jinja2, the templates, MIME) is loaded by the
first email, not by every CustomerActor's construction (issue 11: start-up CPU per tenant)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The modules CustomerWorker.__init__ imports (actors/customer.py), without Ray's actor machinery.
TENANT_IMPORTS = """
import sys
from runtime.adapters.aws import AwsClients
from runtime.adapters.s3 import S3ObjectStore
from runtime.adapters.ses import TenantSes
from runtime.adapters.sqs import SqsQueue
from runtime.services.consumer import MessagePump
from runtime.services.handler import TriggerHandler
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "jinja2" or m.startswith("runtime.emails"))
print(",".join(loaded))
"""


def test_a_tenant_starts_without_email_rendering():
    out = subprocess.run([sys.executable, "-c", TENANT_IMPORTS], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "", f"imported at a tenant's start: {out}"


def test_the_first_email_loads_it():
    code = TENANT_IMPORTS.replace("loaded =", "from runtime.emails import render_email  # noqa\nloaded =")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert "jinja2" in out.split(",")  # the check above can fail: this is what it looks for
