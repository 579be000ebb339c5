"""A throw-away PostgreSQL server on 127.0.0.1: Debian's ``postgresql`` binaries, ``initdb``
and ``pg_ctl`` into a temporary folder, a password-protected user, stopped at the end.

initdb refuses to run as root; as root the server runs as the ``postgres`` user the Debian
package creates, in a folder of its own under /tmp.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER, PASSWORD = "lake", "pg-secret-7f3a9c"


def _binaries() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if not versions:
        raise RuntimeError(
            "PostgreSQL is not installed: apt-get install postgresql (make system-deps)"
        )
    return Path(versions[-1]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        # its own folder under /tmp: the postgres user cannot enter pytest's root-only ones
        folder = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
        self.folder, self.port = folder, _free_port()
        self.bin = _binaries()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        folder.mkdir(parents=True, exist_ok=True)
        password_file = folder / "password"
        password_file.write_text(PASSWORD)
        if self.as_user:
            shutil.chown(folder, "postgres")
            shutil.chown(password_file, "postgres")
        self._run(
            "initdb", "-D", str(folder / "data"), "-U", USER, f"--pwfile={password_file}",
            "-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        options = f"-h 127.0.0.1 -p {self.port} -k {folder} -F -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(folder / "data"),
            "-o",
            options,
            "-l",
            str(folder / "log"),
            "-w",
            "start",
        )

    def _run(self, program: str, *arguments: str) -> None:
        command = [*self.as_user, str(self.bin / program), *arguments]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}")

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
