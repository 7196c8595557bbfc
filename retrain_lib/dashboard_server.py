"""`retrain dashboard`: voila serving the dashboard notebook, a token, and a local worker beside it."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from retrain_lib.parameters import NOTEBOOK_DIR

DASHBOARD_NOTEBOOK = NOTEBOOK_DIR / "dashboard.ipynb"
DOWNLOADS = r"jobs/[^/]+/(export/[^/]+|image\.tar\.gz)"


def ensure_worker(home: Path) -> int:
    """Starts a local worker unless one recorded in RETRAIN_HOME/worker.pid is alive; returns its pid."""
    from scheduler.local import start_worker_process
    from scheduler.runner import _pid_alive

    pid_file = home / "worker.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().strip() or 0)
        if pid and _pid_alive(pid):
            return pid
    process = start_worker_process(home)
    pid_file.write_text(str(process.pid))
    return process.pid


def voila_command(home: Path, host: str, port: int, token: str, base_url: str = "/") -> list[str]:
    """The voila command line: dashboard only, files limited to the job downloads, token required."""
    voila = Path(sys.executable).parent / "voila"
    return [str(voila if voila.exists() else shutil.which("voila") or "voila"), str(home / "dashboard.ipynb"),
            "--no-browser", f"--Voila.ip={host}", f"--port={port}", f"--token={token}",
            f"--Voila.root_dir={home}", f"--Voila.base_url={base_url}",
            f"--VoilaConfiguration.file_allowlist=['{DOWNLOADS}']",
            "--VoilaConfiguration.show_tracebacks=False"]


def run_dashboard(host: str = "127.0.0.1", port: int = 8866, token: str = "", base_url: str = "/",
                  start_worker: bool = True, settings: dict[str, str] | None = None) -> int:
    """Serves the dashboard until interrupted; prints the address with its token."""
    from scheduler.jobs import retrain_home

    home = retrain_home()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy2(DASHBOARD_NOTEBOOK, home / "dashboard.ipynb")
    token = token or secrets.token_urlsafe(18)
    env = {**os.environ, "RETRAIN_HOME": str(home), **(settings or {})}
    os.environ.update(settings or {})
    if start_worker:
        print(f"Local worker running (pid {ensure_worker(home)}); jobs go on if the dashboard stops.", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"Warning: listening on {host}; put it behind a TLS proxy and keep the token secret.", flush=True)
    print(f"Dashboard: http://{host}:{port}{base_url}?token={token}", flush=True)
    process = subprocess.Popen(voila_command(home, host, port, token, base_url), env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        return process.wait()
