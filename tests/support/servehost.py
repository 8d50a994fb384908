"""``servefn serve`` as a real subprocess for end-to-end tests, stopped by its pid.

Its output goes to a file, not a pipe: a pipe nobody reads fills up and stalls a chatty host.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from support.azurite import free_port

# Settings a developer's shell may hold that would change what the app serves.
_UNSET = ("MODEL_URI", "AzureWebJobsStorage")


def servefn_command() -> list[str]:
    """The ``servefn`` console script of this interpreter (``python -m servefn`` without one)."""
    script = Path(sys.executable).with_name("servefn")
    return [str(script)] if script.exists() else [sys.executable, "-m", "servefn"]


class ServeProcess:
    """``servefn serve TARGET --port N [args]`` on a free 127.0.0.1 port."""

    def __init__(
        self,
        target: Path | str,
        log: Path | None = None,
        *,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        cwd: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/api"
        self.log = log or Path(tempfile.mkdtemp(prefix="servefn-serve-")) / "serve.log"
        environment = {k: v for k, v in os.environ.items() if k not in _UNSET}
        environment.update(env or {})
        command = [*servefn_command(), "serve", str(target), "--port", str(self.port), *args]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=environment, cwd=cwd
            )

    def wait(self, timeout: float = 60.0) -> None:
        """Return once the host answers on its health route."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"servefn serve exited: {self.output()}")
            try:
                httpx.get(f"{self.base}/health", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"servefn serve did not start: {self.stop()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> str:
        """Stop the process (by its pid) and return everything it printed."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.output()
