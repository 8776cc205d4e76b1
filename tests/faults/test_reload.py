"""Issue 11 finding 10: five HUPs under load, no failed request, the master alive."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.faults.conftest import Load, assert_every_201_stored, shares

# django_db makes pytest-django create the test database that the processes under fault copy.
pytestmark = [
    pytest.mark.timeout(600), pytest.mark.faults, pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db,
]


def workers_of(master: int) -> set[int]:
    out = subprocess.run(["ps", "--ppid", str(master), "-o", "pid="], capture_output=True, text=True, check=False)
    return {int(pid) for pid in out.stdout.split()}


def test_five_hups_under_load_fail_no_request_and_keep_the_master(gunicorn, fault_env, fault_database):
    server = gunicorn(LOG_LEVEL="INFO")
    master = server.proc.pid
    reloads = []
    # the client gives up after 5 s: a reload that leaves nobody serving for longer is a failure
    with Load(server.base_url, fault_env["FAULTS_API_KEY"], threads=3, timeout=5) as load:
        time.sleep(2)
        for _ in range(5):
            old = workers_of(master)
            started = time.monotonic()
            os.kill(master, signal.SIGHUP)
            # the next HUP once this reload is over: old workers gone, two new ones serving
            deadline = started + 90
            while time.monotonic() < deadline and server.alive():
                now = workers_of(master)
                if len(now) == 2 and not now & old:
                    break
                time.sleep(0.2)
            reloads.append(time.monotonic() - started)
            assert server.alive(), server.log.read_text()[-3000:]
        time.sleep(1)
    print(f"\n5 HUPs under load: {shares(load.results)}, slowest request {max(r[3] for r in load.results):.2f} s,"
          f" reloads took {', '.join(f'{s:.1f}' for s in reloads)} s")
    assert server.alive(), server.log.read_text()[-3000:]
    failed = [r for r in load.results if r[1] != 201]
    assert not failed, shares(failed)
    assert len(load.results) > 50
    assert_every_201_stored(fault_database, load.created())
    # the workers were replaced each time: the master logged five reloads
    assert server.log.read_text().count("Handling signal: hup") == 5
