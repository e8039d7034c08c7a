"""The server ``bench_load.py`` measures: ``python -m policy_cli serve`` started from a checkout
as a subprocess (``subprocess_server``), and its RSS sampled during the load (``RssWatch``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil


class RssWatch:
    """Samples a process's RSS every 0.2 s; ``peak`` is the largest sample."""

    def __init__(self, pid: int | None) -> None:
        self.proc = psutil.Process(pid) if pid else None
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def sample(self) -> int:
        if self.proc is None:
            return 0
        try:
            rss = int(self.proc.memory_info().rss)
        except psutil.Error:
            return 0
        self.peak = max(self.peak, rss)
        return rss

    def high_water(self) -> int:
        """The kernel's lifetime peak (VmHWM, model loading included); 0 when unknown."""
        if self.proc is None:
            return 0
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def subprocess_server(checkout: Path, port: int) -> Iterator[tuple[str, int]]:
    """``policy-assistant serve`` from ``checkout`` on ``port``; yields (url, pid)."""
    url = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(checkout)
    for key, value in {
        "POLICY_SERVER__RATE_LIMIT_PER_MINUTE": "1000000",
        "POLICY_SERVER__ALLOWED_ORIGINS": json.dumps([url]),
        "POLICY_SERVER__PUBLIC_ORIGINS": json.dumps([url]),
        "POLICY_SERVER__FEEDBACK_DB": str(tmp / "feedback.sqlite3"),
        "POLICY_SERVER__ADMIN_DB": str(tmp / "admin.sqlite3"),
        "POLICY_LOG_LEVEL": "WARNING",
    }.items():
        env.setdefault(key, value)
    cmd = [sys.executable, "-m", "policy_cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=checkout, env=env, stdout=subprocess.DEVNULL)
    try:
        t0 = time.perf_counter()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - t0 > 300:
                raise SystemExit("server not ready after 300 s")
            time.sleep(0.5)
        print(
            f"server from {checkout} ready in {time.perf_counter() - t0:.1f} s (pid {proc.pid})", flush=True
        )
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
