"""Launch the real app (python app.py) on a free loopback port, serving the tiny test bundle."""
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


APP_LOG: list[str] = []  # the app's output lines, read as they come (a full pipe would block the app)


@pytest.fixture(scope="session")
def app_log(app_url) -> list[str]:
    return APP_LOG


FILE_SECONDS = 4  # the app deletes its download files after this long (600 s by default)


@pytest.fixture(scope="session")
def gradio_tmp(tmp_path_factory) -> Path:
    """The app's Gradio cache folder (uploads, downloads): tests look for the user's text in it."""
    return tmp_path_factory.mktemp("gradio-cache")


@pytest.fixture(scope="session")
def app_url(bundle_dir, gradio_tmp):
    yield from serve(bundle_dir, gradio_tmp, APP_LOG)


def serve(bundle_dir: Path, gradio_tmp: Path, log: list[str]):
    """Run `python app.py` on the bundle folder until the test session (or module) is done; yields its URL."""
    port = free_port()
    env = dict(os.environ, EDLM_MODEL=str(bundle_dir), GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False",
               PYTHONUNBUFFERED="1", GRADIO_TEMP_DIR=str(gradio_tmp), EDLM_FILE_SECONDS=str(FILE_SECONDS),
               EDLM_MCP="1")  # the MCP tools are served too (tests/app/test_tools.py)
    env.pop("GRADIO_SERVER_NAME", None)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=lambda: log.extend(proc.stdout), daemon=True).start()
    url = f"http://127.0.0.1:{port}/"
    limit = float(os.environ.get("EDLM_TEST_WAIT_SECONDS", "300"))  # a safety net: the signal is the server answering
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            time.sleep(0.5)
            raise RuntimeError("app exited: " + "".join(log))
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError(f"app did not start within {limit:.0f} s")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
