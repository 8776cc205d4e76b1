"""manage.py backup and restore on real PostgreSQL: a restored copy is the same platform."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.deploy.conftest import manage
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# What a platform answers: rows per table, the active model and a stored customer's score. The
# restored copy runs `restore` and then this in one child process (each start costs seconds).
PROBE = """
import json
from churn_platform.backups import table_row_counts
from modelregistry.models import ModelVersion
from predictions.services import prediction_score
counts = table_row_counts()
active = ModelVersion.objects.active().get()
score = prediction_score(body={"customer_id": "C-BACKUP-1"})
print(json.dumps({"counts": counts, "active": [active.version, active.artifact_sha256],
                  "probability": score["churn_probability"]}))
"""


def backup_to(path: Path) -> Path:
    out = io.StringIO()
    call_command("backup", "--output", str(path), stdout=out)
    return Path(out.getvalue().strip().splitlines()[-1])


def test_restore_into_a_fresh_database_gives_the_same_platform(active_version, child_env, fresh_database, tmp_path):
    from churn_platform.backups import table_row_counts
    from predictions.services import prediction_score

    CustomerFactory(customer_id="C-BACKUP-1", tenure_months=2, contract_type="Month-to-month")
    CustomerFactory.create_batch(5)
    prediction_score(body={"customer_id": "C-BACKUP-1"})  # the predictions table is not empty

    archive = backup_to(tmp_path / "backups")  # a directory that does not exist yet
    assert archive.parent == tmp_path / "backups"
    assert archive.name.startswith("churn-backup-")
    original_counts = table_row_counts()
    probability = prediction_score(body={"customer_id": "C-BACKUP-1"})["churn_probability"]
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))
    assert {"database.dump", "manifest.json", f"models/{active_version.artifact.name}"} <= names
    assert manifest["files"][f"models/{active_version.artifact.name}"]["sha256"] == active_version.artifact_sha256
    assert manifest["versions"]["postgresql"]
    assert manifest["versions"]["django"]
    assert manifest["migrations"]["predictions"]
    assert manifest["row_counts"]["customers_customer"] == 6

    _, url = fresh_database()
    restored_env = {**child_env, "DATABASE_URL": url, "CHURN_VAR_DIR": str(tmp_path / "restored")}
    script = f"from django.core.management import call_command; call_command('restore', {str(archive)!r})\n" + PROBE
    result = manage("shell", "-c", script, env=restored_env)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "as in the manifest" in result.stdout
    restored = json.loads(result.stdout.strip().splitlines()[-1])

    assert restored["counts"] == original_counts
    assert restored["active"] == [active_version.version, active_version.artifact_sha256]
    assert (tmp_path / "restored" / "models" / active_version.artifact.name).is_file()
    assert restored["probability"] == probability


def test_restore_refuses_a_database_that_is_not_empty(active_version, tmp_path):
    archive = backup_to(tmp_path / "backup.tar")
    with pytest.raises(CommandError, match=r"is not empty .*--force"):
        call_command("restore", str(archive))


def test_restore_refuses_a_tampered_archive_before_touching_anything(active_version, tmp_path):
    archive = backup_to(tmp_path / "backup.tar")
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(archive) as source, tarfile.open(tampered, "w") as sink:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name.startswith("models/"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            sink.addfile(member, io.BytesIO(data))
    with pytest.raises(CommandError, match=r"models/.*does not match the manifest"):
        call_command("restore", str(tampered), "--force")
