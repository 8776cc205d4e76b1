"""Write .pip-build/: this machine's pip settings for an image build, never committed.

An image build reaches the package index over the host network, so it needs what pip uses here:
the index (and extra indexes that are URLs, not local paths), trusted hosts, proxy, timeout and
the certificate bundle. They are read at build time from `pip config list` and the PIP_*
environment (the environment wins, as it does for pip) and written to .pip-build/pip.conf, with
the bundle copied beside it; the Dockerfile's builder stage reads them and drops them. Local
paths (find-links, file:// indexes, constraint files) only exist on this machine and are left out.

Usage: python3 deploy/docker/pip-build-context.py [DIR]   (default .pip-build)
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

KEPT = ("index-url", "extra-index-url", "trusted-host", "proxy", "timeout", "default-timeout", "retries", "cert")
MOUNTED_AT = "/tmp/build"  # where the Dockerfile copies the directory  # noqa: S108


def pip_settings() -> dict[str, str]:
    """Key -> value from pip's config files, overridden by PIP_* variables."""
    settings: dict[str, str] = {}
    listing = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    for line in listing.splitlines():
        name, _, value = line.partition("=")
        key = name.split(".", 1)[-1]
        if name.startswith(":env:"):
            continue  # read from the environment below
        settings[key] = value.strip().strip("'\"")
    for variable, value in os.environ.items():
        if variable.startswith("PIP_"):
            settings[variable[4:].lower().replace("_", "-")] = value
    return settings


def is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def main(target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    settings = {k: v for k, v in pip_settings().items() if k in KEPT}
    if "default-timeout" in settings:
        settings["timeout"] = settings.pop("default-timeout")
    for key in ("index-url", "extra-index-url"):
        if key in settings:
            urls = [u for u in settings[key].split() if is_remote(u)]
            if urls:
                settings[key] = " ".join(urls)
            else:
                del settings[key]
    bundle = settings.pop("cert", "") or os.environ.get("REQUESTS_CA_BUNDLE", "") or os.environ.get("SSL_CERT_FILE", "")
    if bundle and Path(bundle).is_file():
        shutil.copyfile(bundle, target / "ca.crt")
        settings["cert"] = f"{MOUNTED_AT}/ca.crt"
    config = configparser.ConfigParser()
    config["global"] = settings
    with (target / "pip.conf").open("w") as handle:
        config.write(handle)
    print(f"pip settings for the build in {target}/: {', '.join(sorted(settings)) or 'none'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".pip-build"))
