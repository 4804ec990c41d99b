"""The registry's write retries: which errors are retried, and for how long."""

from __future__ import annotations

import itertools
import time

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from app.db import is_connection_error, retry_writes


class Refused(Exception):
    pass


def _down() -> OperationalError:
    return OperationalError("INSERT ...", {}, Refused("connection refused"))


def test_connection_errors_are_retried_until_the_database_answers():
    calls = []

    @retry_writes(timeout=10, base_delay=0.01)
    def write() -> str:
        calls.append(time.monotonic())
        if len(calls) < 4:
            raise _down()
        return "written"

    assert write() == "written"
    assert len(calls) == 4
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[-1] > gaps[0], f"back-off should grow: {gaps}"


def test_the_retry_bound_is_kept():
    @retry_writes(timeout=0.5, base_delay=0.05, max_delay=0.1)
    def write() -> None:
        raise _down()

    started = time.monotonic()
    with pytest.raises(OperationalError):
        write()
    assert 0.4 < time.monotonic() - started < 2.0


def test_other_errors_are_raised_at_once():
    calls = []

    @retry_writes(timeout=10)
    def write() -> None:
        calls.append(1)
        raise IntegrityError("INSERT ...", {}, Refused("duplicate key"))

    with pytest.raises(IntegrityError):
        write()
    assert calls == [1]


def test_which_errors_count_as_lost_connections():
    assert is_connection_error(_down())
    invalidated = DBAPIError(
        "SELECT 1", {}, Refused("server closed the connection"), connection_invalidated=True
    )
    assert is_connection_error(invalidated)
    assert not is_connection_error(IntegrityError("INSERT", {}, Refused("duplicate")))
    assert not is_connection_error(ValueError("not a database error"))
