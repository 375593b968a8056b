"""Starting and stopping anvil: clear errors, and no process outlives its owner."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.chain import anvil as anvil_module
from bot.chain.anvil import AnvilProcess, find_anvil
from bot.errors import SetupError


def test_missing_anvil_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANVIL_BIN", raising=False)
    monkeypatch.setattr(anvil_module, "NODE_MODULES", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SetupError, match=r"anvil not found: run `make setup`"):
        find_anvil()


def test_bad_anvil_bin_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANVIL_BIN", "/nonexistent/anvil")
    with pytest.raises(SetupError, match="ANVIL_BIN=/nonexistent/anvil does not exist"):
        find_anvil()


def test_port_taken_says_which_and_what_to_do() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(
            SetupError, match=rf"port {port} is already in use: pass another with --port"
        ):
            AnvilProcess(port=port).start()


def test_anvil_dies_with_its_owner_even_on_sigkill() -> None:
    script = (
        "from bot.chain.anvil import AnvilProcess\n"
        "a = AnvilProcess().start()\n"
        "print(a.port, a.pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    port, pid = map(int, owner.stdout.readline().split())
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"anvil {pid} outlived its owner")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # the port is free again


def test_stop_is_idempotent() -> None:
    anvil = AnvilProcess().start()
    assert anvil.rpc("eth_chainId") == "0x7a69"
    anvil.stop()
    anvil.stop()
