"""Device tests use the shared fixtures in ``tests/conftest.py`` (classes in ``tests/support.py``); the web
page's tests (``test_web*.py``) also ``in_process``, over ``tests/web_support.py``'s ``InProcess``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web_support import InProcess


@pytest.fixture
def in_process():
    """Start the daemon's service in a thread with its page on, for a config path; all stopped at the end."""
    started = []

    def start(config: Path) -> InProcess:
        started.append(InProcess(config))
        return started[-1]

    yield start
    for daemon in started:
        daemon.close()
