"""A real MQTT broker on a free loopback port for tests: Mosquitto where it is installed, else
amqtt (pure Python, from the test extra), each in its own process so a test can kill and restart it.

Bounded: it listens on 127.0.0.1 only and is stopped by :meth:`stop` (or the ``with`` block).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def broker_kind() -> str | None:
    """'mosquitto', 'amqtt', or None when neither can run here (XIAONET_TEST_BROKER=amqtt picks amqtt
    where both are)."""
    if shutil.which("mosquitto") and os.environ.get("XIAONET_TEST_BROKER", "mosquitto") == "mosquitto":
        return "mosquitto"
    try:
        import amqtt  # noqa: F401
    except ImportError:
        return None
    return "amqtt"


class MqttTestBroker:
    def __init__(self, folder: Path, kind: str | None = None, mosquitto_options: str = ""):
        self.folder = Path(folder)
        self.mosquitto_options = mosquitto_options  # more configuration lines (TLS, passwords)
        self.kind = kind or broker_kind()
        if self.kind is None:
            raise RuntimeError("no MQTT broker: install mosquitto or amqtt (pip install -e '.[test]')")
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.kind == "mosquitto":
            config = self.folder / "mosquitto.conf"
            # run as whoever runs the tests (as root, mosquitto would switch to a user that cannot read tmp files)
            config.write_text(f"listener {self.port} 127.0.0.1\npersistence false\nuser {getpass.getuser()}\n"
                              + (self.mosquitto_options or "allow_anonymous true\n"))
            return [shutil.which("mosquitto"), "-c", str(config)]
        config = self.folder / "amqtt.yaml"
        config.write_text(f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{self.port}\n"
                          "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                          "    allow_anonymous: true\n")
        return [sys.executable, "-c", "from amqtt.scripts.broker_script import main; main()", "-c", str(config)]

    def start(self, timeout: float = 15.0) -> "MqttTestBroker":
        command = self._command()
        log = open(self.folder / f"broker-{self.starts}.log", "w")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited at start: {(self.folder / f'broker-{self.starts - 1}.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not listen on 127.0.0.1:{self.port} within {timeout} s")

    def kill(self) -> None:
        """Stop at once (SIGKILL): what it held in memory is lost, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    stop = kill

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
