"""Test helpers shared by unit and integration tests."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_for(predicate: Callable[[], T], timeout_s: float, what: str,
             diagnostics: Callable[[], str] | None = None, interval_s: float = 0.1) -> T:
    """Polls predicate until it returns something truthy; on timeout says what it waited for."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    extra = f"\n{diagnostics()}" if diagnostics else ""
    raise WaitTimeout(f"timed out after {timeout_s:.0f}s waiting for {what} (last value: {last!r}){extra}")


def http_get(url: str) -> tuple[int, str]:
    """(status, body) of a GET on 127.0.0.1, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
