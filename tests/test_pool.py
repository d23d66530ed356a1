"""Spawned workers started ahead of need (where there is no zygote): faster, and still
one process per submission. The zygote has its own tests in test_zygote.py."""

from __future__ import annotations

import pytest

from autograder.engine import pool
from autograder.engine.codec import MISSING
from autograder.engine.sandbox import Limits
from autograder.engine.session import Session

LIMITS = Limits(cell_timeout=30)


@pytest.fixture(autouse=True)
def no_zygote(monkeypatch):
    pool.shutdown()
    monkeypatch.setenv("AUTOGRADER_ZYGOTE", "0")


def _pid(session: Session) -> int:
    session.run_cell("probe", "import os\npid = os.getpid()")
    return session.get("pid")["pid"]


def test_every_session_gets_a_fresh_process_never_a_used_one():
    """With spares kept ready, does each submission still get its own, untouched process?"""
    readable, env = pool.settings()
    pool.prestart(1, LIMITS, readable, env, total=3)
    try:
        seen = set()
        for i in range(3):
            with Session(LIMITS, readable=readable, env=env) as s:
                assert s.get("leak")["leak"] is MISSING        # nothing from an earlier student
                assert s.run_cell("x", f"leak = {i}").status == "ok"
                seen.add((s._worker.proc.pid, _pid(s)))
        assert len(seen) == 3
        assert pool._spares == []                # the budget of 3 leaves no spare behind
    finally:
        pool.shutdown()


def test_a_spare_that_died_while_waiting_is_not_handed_out():
    """Is a spare that died before use replaced by a working worker?"""
    readable, env = pool.settings()
    pool.prestart(1, LIMITS, readable, env)
    try:
        pool._spares[0].proc.kill()
        pool._spares[0].proc.wait()
        with Session(LIMITS, readable=readable, env=env) as s:
            assert s.run_cell("x", "y = 1").status == "ok"
    finally:
        pool.shutdown()
    assert pool._spares == []
