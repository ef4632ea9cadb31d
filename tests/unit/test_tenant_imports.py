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


# What a tenant's process loads, first email included, from the view it is shipped (pickled as Ray
# ships it): no pydantic, no configuration models (issue 11: a tenant's memory).
TENANT_VIEW = """
import pickle, sys
view = pickle.loads(bytes.fromhex(sys.argv[1]))
from actors.customer import CustomerWorker
from runtime.adapters.aws import AwsClients
from runtime.adapters.ses import TenantSes
from runtime.adapters.s3 import S3ObjectStore
from runtime.services.handler import TriggerHandler
from runtime.domain.model import parse_trigger_key
from runtime.emails import render_email  # noqa: F401 - what the first email loads
from runtime.emails.ics import render_calendar  # noqa: F401
from runtime.emails.mime import build_mime  # noqa: F401
customer = view.customer(sys.argv[2])
clients = AwsClients(view.region, "http://127.0.0.1:9")
store = S3ObjectStore(clients, view.bucket)
TriggerHandler(cfg=view, customer=customer, store=store, mailer=TenantSes(clients, view, customer), archive=None)
parse_trigger_key(f"customers/{customer.code}/CHG-1.json")
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] == "pydantic" or m == "runtime.domain.config")))
"""


def test_a_tenant_built_from_its_view_imports_no_pydantic():
    import pickle

    from tests.conftest import memory_config

    cfg = memory_config()
    code = cfg.customer_codes[0]
    out = subprocess.run([sys.executable, "-c", TENANT_VIEW, pickle.dumps(cfg.tenant_view(code)).hex(), code],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert out == "", f"imported by a tenant: {out}"
    # the same check given the whole Config does see pydantic: the check can fail
    whole = subprocess.run([sys.executable, "-c", TENANT_VIEW, pickle.dumps(cfg).hex(), code],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert "pydantic" in whole.split(",") and "runtime.domain.config" in whole.split(",")
