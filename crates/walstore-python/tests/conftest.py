"""Shared fixtures: a fresh store path, the `walstore` command and the Rust interop example,
and a helper that runs a Python snippet in a child process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _binary(env_name: str, relative: str) -> str:
    path = Path(os.environ.get(env_name) or REPO / relative)
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: build it with "
            "`cargo build -p walstore-cli --bin walstore --example typed_interop` "
            f"(or set {env_name})"
        )
    return str(path)


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    """The path of a store that does not exist yet."""
    return str(tmp_path / "store")


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt for the test, whatever the test run inherited: a
    shell starting a command in the background without job control (`cmd &` in a script)
    has it ignore SIGINT, and Python then installs no handler, so a test that interrupts
    itself would wait for an interrupt that never comes."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def unless_done_within(seconds: float, action):
    """Runs `action` in a thread if the block has not ended within `seconds`: what ends a wait
    that a test expects something else to end (a change or a record when the interrupt it
    sends never comes), so that the test fails instead of hanging."""
    done = threading.Event()

    def rescue() -> None:
        if not done.wait(seconds):
            action()

    rescuer = threading.Thread(target=rescue)
    rescuer.start()
    try:
        yield
    finally:
        done.set()
        rescuer.join()


@pytest.fixture(scope="session")
def cli() -> str:
    """The `walstore` command."""
    return _binary("WALSTORE_BIN", "target/debug/walstore")


@pytest.fixture(scope="session")
def rust_interop() -> str:
    """The Rust program that writes and reads a typed value with put_as/get_as."""
    return _binary("WALSTORE_TYPED_EXAMPLE", "target/debug/examples/typed_interop")


def child_script(body: str) -> list[str]:
    """The command line that runs `body` (dedented) in a fresh Python interpreter."""
    return [sys.executable, "-c", textwrap.dedent(body)]


def run_child(body: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `body` with `args` as sys.argv[1:]; fails the test if it fails."""
    done = subprocess.run(
        child_script(body) + list(args), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"child failed ({done.returncode}): {done.stderr}"
    return done
