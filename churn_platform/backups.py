"""One archive that restores the platform: the database, the model artifacts and a manifest.

`manage.py backup` writes ``churn-backup-<UTC time>.tar`` holding
  database.dump    pg_dump in custom format (compressed; pg_restore reads it)
  models/<name>    every model version's artifact, read from the "models" storage (disk or S3)
  manifest.json    format, times, Django/platform/PostgreSQL/pg_dump versions, applied migrations,
                   rows per table, and the size and SHA-256 of every other member
`manage.py restore ARCHIVE` checks every checksum first, refuses a database that has tables or a
model storage that holds artifacts (unless forced), then runs pg_restore, writes the artifacts
back under their names, and compares the rows per table with the manifest.

pg_dump/pg_restore are used rather than Django's dumpdata/loaddata: they keep sequences,
constraints and the data of tables Django does not model, and restore millions of rows in
minutes. PostgreSQL only; the development SQLite database is a file to copy.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder

from modelregistry.loader import publish_active_stamp
from modelregistry.models import ModelVersion

FORMAT = "churn-backup/1"
DUMP = "database.dump"
MANIFEST = "manifest.json"
MODELS_DIR = "models/"


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why."""


@dataclass
class RestoreReport:
    tables: int = 0
    rows: int = 0
    artifacts: int = 0
    mismatched_tables: dict[str, tuple[int, int]] = field(default_factory=dict)


def _tool(name: str) -> str:
    """pg_dump/pg_restore: PG_BIN_DIR, else PATH, else the newest /usr/lib/postgresql/*/bin."""
    configured = os.environ.get("PG_BIN_DIR", "")
    if configured:
        return str(Path(configured) / name)
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return str(candidates[-1])
    raise BackupError(f"{name} is not installed (PostgreSQL client tools; set PG_BIN_DIR)")


def _libpq_env(alias: str) -> dict[str, str]:
    db = connections[alias].settings_dict
    if "postgresql" not in db["ENGINE"]:
        raise BackupError(f"backup and restore need PostgreSQL; database {alias!r} uses {db['ENGINE']}")
    env = dict(os.environ)
    for key, variable in (("HOST", "PGHOST"), ("PORT", "PGPORT"), ("USER", "PGUSER"), ("PASSWORD", "PGPASSWORD"),
                          ("NAME", "PGDATABASE")):
        if db.get(key):
            env[variable] = str(db[key])
    env["PGCONNECT_TIMEOUT"] = str(db.get("OPTIONS", {}).get("connect_timeout", 10))
    return env


def _run(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed ({result.returncode}): {result.stderr.strip()[:2000]}")
    return result.stdout


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def table_row_counts(alias: str = "default") -> dict[str, int]:
    """Exact rows per table of the public schema (the manifest's and the restore check's)."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        names = sorted(connection.introspection.table_names(cursor))
        counts = {}
        for name in names:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(name)}")  # noqa: S608 - introspected names
            counts[name] = cursor.fetchone()[0]
    return counts


def _applied_migrations(alias: str) -> dict[str, str]:
    latest: dict[str, str] = {}
    for app, name in MigrationRecorder(connections[alias]).applied_migrations():
        latest[app] = max(latest.get(app, ""), name)
    return dict(sorted(latest.items()))


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(datetime.now(UTC).timestamp())
    info.mode = 0o600
    archive.addfile(info, io.BytesIO(data))


def create_backup(output: Path, *, alias: str = "default") -> tuple[Path, dict[str, Any]]:
    """Write the archive into ``output`` (a directory, made if missing, or a file path ending in .tar)."""
    env = _libpq_env(alias)
    now = datetime.now(UTC)
    # A path ending in .tar is the archive itself; anything else is a directory (made if missing).
    target = output if output.suffix == ".tar" else output / f"churn-backup-{now:%Y%m%dT%H%M%SZ}.tar"
    target.parent.mkdir(parents=True, exist_ok=True)
    storage = storages["models"]
    with tempfile.TemporaryDirectory(prefix="churn-backup-") as scratch:
        dump = Path(scratch) / DUMP
        # Row counts first, the dump after: on a live system the dump may hold a few more rows,
        # which the restore reports as a difference rather than hiding it.
        counts = table_row_counts(alias)
        _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", str(dump)], env)
        members: dict[str, dict[str, Any]] = {DUMP: {"size": dump.stat().st_size, "sha256": _sha256_file(dump)}}
        artifacts = []
        partial = f"{target}.partial"
        with tarfile.open(partial, "w") as archive:
            archive.add(dump, arcname=DUMP)
            versions = ModelVersion.objects.using(alias).exclude(artifact="").order_by("pk")
            for version in versions.only("pk", "version", "artifact", "artifact_sha256"):
                with storage.open(version.artifact.name, "rb") as handle:
                    data = handle.read()
                checksum = hashlib.sha256(data).hexdigest()
                if version.artifact_sha256 and checksum != version.artifact_sha256:
                    raise BackupError(
                        f"model version {version.version}: artifact {version.artifact.name} does not match its "
                        f"recorded checksum (stored {checksum}, registry {version.artifact_sha256})"
                    )
                member = MODELS_DIR + version.artifact.name
                _add_bytes(archive, member, data)
                members[member] = {"size": len(data), "sha256": checksum}
                artifacts.append({"version": version.version, "name": version.artifact.name, "sha256": checksum})
            with connections[alias].cursor() as cursor:
                cursor.execute("SHOW server_version")
                server_version = cursor.fetchone()[0]
            manifest = {
                "format": FORMAT,
                "created_at": now.isoformat(),
                "versions": {
                    "platform": _platform_version(),
                    "django": django.get_version(),
                    "postgresql": server_version,
                    "pg_dump": _run([_tool("pg_dump"), "--version"], env).strip(),
                },
                "database": connections[alias].settings_dict["NAME"],
                "migrations": _applied_migrations(alias),
                "row_counts": counts,
                "artifacts": artifacts,
                "files": members,
            }
            _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        os.replace(partial, target)
    return target, manifest


def _platform_version() -> str:
    return str(getattr(settings, "SPECTACULAR_SETTINGS", {}).get("VERSION", "unknown"))


def read_manifest(archive_path: Path) -> dict[str, Any]:
    with tarfile.open(archive_path, "r") as archive:
        try:
            manifest = json.load(archive.extractfile(MANIFEST))  # type: ignore[arg-type]
        except KeyError as exc:
            raise BackupError(f"{archive_path}: no {MANIFEST}; not a churn backup") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive_path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def _verify_members(archive: tarfile.TarFile, manifest: dict[str, Any]) -> None:
    names = {m.name for m in archive.getmembers() if m.isfile()} - {MANIFEST}
    listed = set(manifest["files"])
    if names != listed:
        raise BackupError(f"archive members differ from the manifest: extra {sorted(names - listed)}, "
                          f"missing {sorted(listed - names)}")
    for name, expected in manifest["files"].items():
        digest = hashlib.sha256()
        handle = archive.extractfile(name)
        for block in iter(lambda h=handle: h.read(1024 * 1024), b""):  # type: ignore[union-attr]
            digest.update(block)
        if digest.hexdigest() != expected["sha256"]:
            raise BackupError(
                f"{name}: checksum {digest.hexdigest()} does not match the manifest's {expected['sha256']}"
            )


def _storage_has_artifacts(storage: Any) -> bool:
    try:
        _directories, files = storage.listdir("artifacts")
    except (FileNotFoundError, NotADirectoryError):
        return False
    return bool(files)


def restore_backup(archive_path: Path, *, alias: str = "default", force: bool = False) -> RestoreReport:
    """Restore into an empty database and model storage (``force``: replace what is there)."""
    env = _libpq_env(alias)
    manifest = read_manifest(archive_path)
    storage = storages["models"]
    connection = connections[alias]
    report = RestoreReport()
    with tarfile.open(archive_path, "r") as archive, tempfile.TemporaryDirectory(prefix="churn-restore-") as scratch:
        # A damaged or altered archive is refused before anything is touched.
        _verify_members(archive, manifest)
        with connection.cursor() as cursor:
            existing = connection.introspection.table_names(cursor)
        if existing and not force:
            raise BackupError(
                f"database {connection.settings_dict['NAME']!r} is not empty ({len(existing)} tables); restore into "
                "an empty database, or pass --force to replace its contents"
            )
        if _storage_has_artifacts(storage) and not force:
            raise BackupError("the model storage already holds artifacts; restore into an empty one, or pass --force")
        dump = Path(scratch) / DUMP
        with archive.extractfile(DUMP) as source, dump.open("wb") as sink:  # type: ignore[union-attr]
            shutil.copyfileobj(source, sink)
        connection.close()  # pg_restore --clean drops tables this connection may hold locks on
        command = [_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                   "--dbname", env.get("PGDATABASE", ""), str(dump)]
        if existing:
            command[1:1] = ["--clean", "--if-exists"]
        _run(command, env)
        for artifact in manifest["artifacts"]:
            data = archive.extractfile(MODELS_DIR + artifact["name"]).read()  # type: ignore[union-attr]
            if storage.exists(artifact["name"]):
                storage.delete(artifact["name"])
            saved = storage.save(artifact["name"], ContentFile(data))
            if saved != artifact["name"]:
                raise BackupError(f"the storage saved {artifact['name']} as {saved}; the registry would not find it")
            report.artifacts += 1
    counts = table_row_counts(alias)
    expected = manifest["row_counts"]
    report.tables = len(counts)
    report.rows = sum(counts.values())
    report.mismatched_tables = {
        name: (expected.get(name, 0), counts.get(name, 0))
        for name in sorted(set(expected) | set(counts))
        if expected.get(name, 0) != counts.get(name, 0)
    }
    publish_active_stamp()  # every process re-reads the active model of the restored registry
    return report
