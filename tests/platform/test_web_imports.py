"""A web worker that scores never imports scikit-learn or SciPy, nor pandas for single records
(issue 13.3).

The request path uses the compiled scorer; scikit-learn and the SciPy it pulls in are ~86 MB of
resident memory per worker, pandas ~45 MB. Checked in a fresh interpreter, since this test process itself has
trained models: the whole URL tree and admin loaded, a full record and a stored customer scored,
a batch scored, a customer read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.factories import CustomerFactory, record

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, os, sys
import django
django.setup()
from django.core.wsgi import get_wsgi_application
from django.test import Client
get_wsgi_application()
client = Client(HTTP_X_API_KEY=os.environ["KEY"])
answers = [
    client.get("/readyz").status_code,  # gunicorn's warm-up call
    client.post("/api/v1/predictions/", os.environ["RECORD"], content_type="application/json").status_code,
    client.post("/api/v1/predictions/", json.dumps({"customer_id": "STORED-1"}),
                content_type="application/json").status_code,
    client.get("/api/v1/customers/STORED-1/").status_code,
    client.get("/api/v1/predictions/?customer_id=STORED-1").status_code,
]
Client().get("/metrics")
single = "pandas" in sys.modules
answers.append(client.post("/api/v1/predictions/batch/", json.dumps({"customers": [json.loads(os.environ["RECORD"])]}),
                           content_type="application/json").status_code)
heavy = sorted(name for name in ("sklearn", "scipy", "churn_ml.training", "churn_ml.feature_transformer")
               if name in sys.modules)
print(json.dumps({"answers": answers, "pandas_for_single_records": single, "heavy": heavy}))
"""


def test_a_scoring_web_process_never_imports_scikit_learn_or_scipy(active_version, api_key):
    if connection.vendor != "postgresql":
        pytest.skip("the test database of SQLite is in memory; another process cannot open it")
    CustomerFactory(customer_id="STORED-1")
    db = connection.settings_dict
    env = {**os.environ, "KEY": api_key[1], "RECORD": json.dumps(record(customer_id="WEB-1")),
           "DJANGO_SETTINGS_MODULE": "churn_platform.settings", "PYTHONPATH": str(ROOT),
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}  # fmt: skip

    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["answers"] == [200, 201, 201, 200, 200, 200], done.stderr[-3000:]
    assert seen["pandas_for_single_records"] is False  # pandas (~45 MB) comes with the first batch
    assert seen["heavy"] == []
