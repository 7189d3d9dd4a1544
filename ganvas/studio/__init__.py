"""ganvas studio: draw label maps and sketches, edit scenes, colourise photos with hints, in the browser.

`serve()` binds a socket (127.0.0.1 by default), makes a token, prints the page's address and runs the
app of `ganvas.studio.app` with uvicorn until Ctrl-C. The studio needs the `studio` extra
(Starlette, uvicorn).
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ganvas.errors import OptionsError

log = logging.getLogger("ganvas")

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def require_studio() -> None:
    """OptionsError naming the extra when Starlette or uvicorn is missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise OptionsError(f"the studio needs {err.name}: pip install 'ganvas[studio]'") from None


@dataclass
class Launch:
    """A bound studio: its socket, address (with the token in the fragment) and ASGI app."""

    sock: socket.socket
    url: str
    app: object
    token: str


def prepare(
    checkpoints_dir: Path | None,
    files: list[Path] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    allow_remote: bool = False,
    backend: str | None = None,
    device: str | None = None,
    max_body_mb: float = 32,
    max_pixels: int = 2048 * 2048,
) -> Launch:
    """Bind host:port (0: a free port), list the runs and build the app; nothing is served yet."""
    require_studio()
    from ganvas.studio.app import Settings, host_names, make_app
    from ganvas.studio.catalog import Catalog, Limits

    if host not in LOCAL_HOSTS and not allow_remote:
        raise OptionsError(
            f"--host {host} lets other machines reach the studio and the runs it serves; pass --allow-remote "
            f"as well if that is meant, or leave --host at 127.0.0.1"
        )
    if host not in LOCAL_HOSTS:
        log.warning(
            "the studio listens on %s: anyone who can reach this machine and has the token can use its runs",
            host,
        )
    catalog = Catalog(checkpoints_dir, files, backend=backend, device=device)
    if not catalog.entries:
        where = f" under {checkpoints_dir}" if checkpoints_dir is not None else ""
        raise OptionsError(
            f"no runs found{where} (folders with opt.yaml and latest_net_*.pth); train one, pass --checkpoint "
            f"FILE, or start with --demo"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("::1" if host == "::1" else "127.0.0.1" if host == "localhost" else host, port))
    except OSError as err:
        sock.close()
        raise OptionsError(
            f"cannot listen on {host}:{port} ({err.strerror}); pick another --port (0: any free one)"
        ) from None
    sock.listen(64)
    bound = sock.getsockname()[1]
    token = secrets.token_urlsafe(24)
    shown = "127.0.0.1" if host == "localhost" else host
    settings = Settings(
        token=token,
        hosts=host_names(shown, bound),
        max_body=int(max_body_mb * 2**20),
        limits=Limits(max_pixels=max_pixels),
    )
    url_host = f"[{shown}]" if ":" in shown else shown
    return Launch(sock, f"http://{url_host}:{bound}/#{token}", make_app(catalog, settings), token)


def serve(launch: Launch, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve a prepared studio with uvicorn until Ctrl-C (or the server is told to stop)."""
    import uvicorn

    config = uvicorn.Config(launch.app, log_level="warning", lifespan="off", server_header=False)
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(launch.url)
    server.run(sockets=[launch.sock])


class Background:
    """A prepared studio served by uvicorn in a thread of this process (tests, benchmarks, screenshots)."""

    def __init__(self, launch: Launch) -> None:
        import threading

        import uvicorn

        self.url = launch.url
        config = uvicorn.Config(launch.app, log_level="warning", lifespan="off", server_header=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [launch.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            self.thread.join(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


__all__ = ["Background", "Launch", "prepare", "serve"]
