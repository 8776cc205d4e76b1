"""Model artifacts in S3-compatible object storage, against moto's standalone S3 server on 127.0.0.1.

Every step runs in its own child process configured only by the environment, as a deployment
would be: train and store, promote, hot-reload in a second long-running process, and refuse an
object altered in the bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.deploy.conftest import ROOT, manage

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BUCKET = "churn-models-test"

TRAIN = """
from churn_ml.schema import load_telco_csv
from churn_ml.training import train
from accounts.services import SYSTEM
from modelregistry.services import model_promote, model_version_register
frame, labels = load_telco_csv("data/telco_customer_churn.csv")
labels_seen = []
for seed, rows in ((1, 1500), (2, 1800)):
    trained = train(frame.head(rows), labels[:rows], seed=seed, algorithm="logistic")
    version = model_version_register(trained=trained, training_source="s3 test")
    labels_seen.append(version.version)
model_promote(version=labels_seen[0], actor=SYSTEM)
print(" ".join(labels_seen))
"""

# A second process that serves: prints the version it scores with each time it changes.
SERVE = """
import time
from modelregistry.loader import active_model
seen = None
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    model = active_model()
    if model.version != seen:
        seen = model.version
        print("serving", seen, flush=True)
    if seen == "{until}":
        break
    time.sleep(0.2)
"""

PROMOTE = """
from accounts.services import SYSTEM
from modelregistry.services import model_promote
model_promote(version="{version}", actor=SYSTEM, force=True, reason="the object-storage test")
"""

TAMPERED = """
from churn_ml.artifact import ArtifactIntegrityError
from modelregistry.loader import load_version
from modelregistry.models import ModelVersion
try:
    load_version(ModelVersion.objects.get(version="{version}"))
except ArtifactIntegrityError as exc:
    print("refused:", exc)
else:
    print("loaded")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server():
    """(endpoint, boto3 client) of a moto S3 server on a free port; stopped by its PID."""
    boto3 = pytest.importorskip("boto3")
    binary = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server")
    if not os.path.exists(binary):
        pytest.skip("moto[server] is not installed (requirements-dev.txt)")
    port = _free_port()
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        client.create_bucket(Bucket=BUCKET)
        yield endpoint, client
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_artifacts_live_in_the_bucket_serve_hot_reload_and_refuse_tampering(s3_server, child_env, tmp_path):
    from modelregistry.models import ModelVersion

    endpoint, client = s3_server
    env = {**child_env, "MODEL_STORAGE_S3_BUCKET": BUCKET, "MODEL_STORAGE_S3_ENDPOINT_URL": endpoint,
           "MODEL_STORAGE_S3_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "CHURN_VAR_DIR": str(tmp_path / "var")}

    trained = manage("shell", "-c", TRAIN, env=env, timeout=300)
    assert trained.returncode == 0, trained.stderr
    first, second = trained.stdout.strip().splitlines()[-1].split()

    # Stored in the bucket, under the prefix, byte for byte what the registry's checksum says.
    for label in (first, second):
        version = ModelVersion.objects.get(version=label)
        body = client.get_object(Bucket=BUCKET, Key=f"models/{version.artifact.name}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == version.artifact_sha256
    assert not (tmp_path / "var" / "models").exists()  # nothing on the local disk

    # A second process serves the active model from the bucket, and follows a promotion.
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        serving = subprocess.Popen([sys.executable, "manage.py", "shell", "-c", SERVE.format(until=second)], cwd=ROOT,
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_line(log, f"serving {first}", serving)
        # Promotion verifies the artifact from the bucket too, so it runs configured like the rest.
        promoted = manage("shell", "-c", PROMOTE.format(version=second), env=env)
        assert promoted.returncode == 0, promoted.stderr
        _wait_for_line(log, f"serving {second}", serving)
        assert serving.wait(timeout=30) == 0
    finally:
        if serving.poll() is None:
            os.kill(serving.pid, signal.SIGTERM)
            serving.wait(timeout=10)

    # An object altered in the bucket is refused, not served.
    key = f"models/{ModelVersion.objects.get(version=second).artifact.name}"
    body = bytearray(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
    refused = manage("shell", "-c", TAMPERED.format(version=second), env=env)
    assert refused.returncode == 0, refused.stderr
    assert "refused:" in refused.stdout, refused.stdout


def _wait_for_line(log, text: str, proc, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if text in log.read_text():
                return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"{text!r} not seen: {log.read_text()[-3000:]}")
