"""What a tenant's process imports. Email rendering (jinja2, the templates) is never loaded
there: the renderer actor renders (actors/renderer.py), and a tenant only builds the request and,
for an email with a calendar file, the MIME message (issue 11: a tenant's start-up CPU and memory).
"""

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


# What a tenant does for an email besides sending it: the request to the renderer, and the MIME
# message of an email that carries a calendar file.
EMAIL_PATH = """
from runtime.emails import DeliveryRequest
from runtime.emails.mime import build_mime
DeliveryRequest("approved", {"changeId": "CHG-1"}, customer_code="t00", customer_name="T", portal_base_url="http://x",
                transition={}, zones=(None,))
build_mime(sender="a@example.com", to="b@example.com", subject="s", text="t", html="<p>h</p>",
           calendar="BEGIN:VCALENDAR\\r\\nEND:VCALENDAR\\r\\n")
"""


def test_a_tenants_email_path_never_loads_jinja2():
    code = TENANT_IMPORTS.replace("loaded =", EMAIL_PATH + "loaded =")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert "runtime.emails.mime" in out.split(",")  # the email path ran
    assert not [m for m in out.split(",") if m.split(".")[0] == "jinja2"], f"imported by a tenant: {out}"


def test_rendering_loads_jinja2():
    code = TENANT_IMPORTS.replace("loaded =", EMAIL_PATH + """
from runtime.emails import LocalRenderer
from tests.unit.test_emails import change, transition
LocalRenderer().render(DeliveryRequest("approval_request", change(), customer_code="t00", customer_name="T",
                                       portal_base_url="http://x", transition=transition("submitted"), zones=(None,)))
loaded =""")
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
from runtime.emails import DeliveryRequest  # noqa: F401 - what the first email loads
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
