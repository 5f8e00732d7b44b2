"""`rnncli serve`: trained runs behind a JSON-over-HTTP service (FastAPI on uvicorn).

    serve(runs, host, port, int8)    load every run, then serve until SIGTERM / Ctrl-C
    app.py                           the routes, error handling and the model lock
    schemas.py                       the request bodies and their limits

Why FastAPI + uvicorn: typed request models (pydantic) give the strict validation and the
field-naming 4xx errors for free, streaming responses are built in, uvicorn shuts down
gracefully on SIGTERM (stops accepting, finishes requests in flight), and both are widely used
and maintained. They are an optional extra: `pip install 'rnncli[serve]'`.
"""
from __future__ import annotations

import contextlib
import signal
import socket
import sys
from pathlib import Path

from rnncli import api
from rnncli.errors import ArgumentError, RnncliError

EXTRA_HINT = "rnncli serve needs the serve extra: pip install 'rnncli[serve]'"
GRACE_S = 10  # seconds requests in flight get to finish after SIGTERM


def require_extra() -> None:
    """A one-line RnncliError naming the extra when fastapi or uvicorn is missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise RnncliError(f"{EXTRA_HINT} ({error.name} is not installed)") from None


def model_names(runs: list[str]) -> dict[str, str]:
    """name -> run directory: NAME=RUN_DIR, or the directory's own name."""
    named: dict[str, str] = {}
    for entry in runs:
        name, sep, path = entry.partition("=")
        name, path = (name, path) if sep else (Path(entry).name, entry)
        if not name or name in named:
            raise ArgumentError("runs", f"two runs are named {name!r}: name them as NAME=RUN_DIR")
        named[name] = path
    return named


def load_models(runs: list[str], which: str = "best", int8: bool = False) -> dict:
    """name -> api.LoadedRun; the compiled CPU kernels are built now, not during the first request."""
    from rnncli.nn import fused_cpu

    models = {name: api.open_run(path, which, int8=int8) for name, path in model_names(runs).items()}
    fused_cpu.kernels()
    return models


def check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise ArgumentError("port", f"must be in 1..65535 (got {port})")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ArgumentError("port", f"{port} on {host} cannot be used: {error.strerror}") from None


def serve(runs: list[str], host: str = "127.0.0.1", port: int = 8000, int8: bool = False,
          which: str = "best", on_ready=None) -> None:
    """Serve `runs` on host:port until SIGTERM or Ctrl-C (requests in flight get GRACE_S seconds)."""
    require_extra()
    if not runs:
        raise ArgumentError("runs", "give at least one run directory")
    check_port(host, port)
    models = load_models(runs, which, int8)
    import uvicorn

    from rnncli.tools.serve.app import build_app

    config = uvicorn.Config(build_app(models), host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=GRACE_S, access_log=False)
    if on_ready is not None:
        on_ready(models, f"http://{host}:{port}")
    _server_class()(config).run()  # until SIGTERM / Ctrl-C: stop accepting, drain, return
    print("rnncli serve: shut down", file=sys.stderr, flush=True)


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a SIGTERM / SIGINT ends `run()` normally (exit status 0) after the
        graceful drain; uvicorn itself re-raises the signal, so the process would die of it. A second
        signal forces the exit."""

        @contextlib.contextmanager
        def capture_signals(self):
            def stop(signum, frame):
                self.force_exit = self.should_exit
                self.should_exit = True

            previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server
