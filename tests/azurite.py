"""Azurite's Table service for the tests: started once per session, on a free loopback port.

Azurite comes from npm (package.json at the repository root; ``make test`` runs ``npm ci``).
It keeps everything in memory, so each test uses a table of its own.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINARY = ROOT / "node_modules" / ".bin" / "azurite-table"
# The well-known development account every Azurite has; the key is published by Microsoft.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
START_TIMEOUT = 20.0
START_ATTEMPTS = 3
STOP_TIMEOUT = 5.0


class AzuriteError(RuntimeError):
    pass


class AzuriteExited(AzuriteError):
    pass


class AzuriteTable:
    """One Azurite Table service process; use as a context manager."""

    def __init__(self, binary: Path = BINARY) -> None:
        self._binary = binary
        self._workdir = tempfile.TemporaryDirectory(prefix="azurite-")
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"TableEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};")

    def start(self) -> None:
        if not self._binary.exists():
            raise AzuriteError(f"Azurite is not installed ({self._binary} is missing): "
                               "run `make test`, which installs Azurite with npm")
        for attempt in range(START_ATTEMPTS):
            try:
                self._spawn()
                return
            except AzuriteExited:
                # Another process may have taken the free port between probe and bind.
                if attempt == START_ATTEMPTS - 1:
                    raise

    def _spawn(self) -> None:
        self.port = _free_port()
        log = Path(self._workdir.name) / "azurite.log"
        with log.open("wb") as output:
            # --location cannot be combined with --inMemoryPersistence, so the working
            # directory keeps anything Azurite writes out of the repository.
            self._process = subprocess.Popen(
                [str(self._binary), "--inMemoryPersistence", "--disableTelemetry",
                 "--skipApiVersionCheck", "--loose", "--tableHost", "127.0.0.1",
                 "--tablePort", str(self.port)],
                cwd=self._workdir.name, stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        self._wait_until_listening(log)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        self._workdir.cleanup()

    def __enter__(self) -> AzuriteTable:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def _wait_until_listening(self, log: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AzuriteExited(f"Azurite exited with code {self._process.returncode}:\n"
                                   f"{log.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AzuriteError(f"Azurite did not listen on 127.0.0.1:{self.port} within "
                           f"{START_TIMEOUT:.0f} s:\n{log.read_text(errors='replace')[-2000:]}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def azurite_table_connection_string() -> Iterator[str]:
    """A connection string for a session-wide Azurite Table service (in memory)."""
    with AzuriteTable() as azurite:
        yield azurite.connection_string
