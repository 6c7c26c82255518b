"""Leadership: who runs the scheduler when several instances share one database.

The two-process proof (SIGKILL of the leader) is in tests/test_scale.py; here the lock
itself, in one process, on whichever database the suite runs on.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.leader import Leadership
from bot.runtime import Runtime
from bot.scheduler import BotScheduler, scheduler_while_leader


async def test_the_instance_leads_and_runs_the_scheduler_until_it_stops(runtime: Runtime) -> None:
    async with scheduler_while_leader(runtime, retry_seconds=0.05) as leadership:
        for _ in range(100):
            if BotScheduler.current is not None:
                break
            await asyncio.sleep(0.05)
        assert leadership.held
        assert BotScheduler.current is not None and BotScheduler.current.scheduler.running
    assert BotScheduler.current is None


@pytest.mark.postgres_only  # only PostgreSQL is shared by several instances
async def test_one_leader_at_a_time_and_the_next_takes_over(runtime: Runtime) -> None:
    url = runtime.settings.database_url
    first, second = Leadership(url), Leadership(url)
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        assert await first.still_held()
        await first.release()
        assert await second.try_acquire()
        assert not await first.try_acquire()
    finally:
        await first.close()
        await second.close()


@pytest.mark.postgres_only  # only PostgreSQL is shared by several instances
async def test_a_leader_whose_connection_is_cut_knows_it_lost(runtime: Runtime) -> None:
    url = runtime.settings.database_url
    leader, standby = Leadership(url), Leadership(url)
    try:
        assert await leader.try_acquire()
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            # What a database restart or a network cut does to the lock's session.
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND objid = :low"
                ),
                {"low": leader.key & 0xFFFFFFFF},
            )
        await engine.dispose()
        assert not await leader.still_held()
        assert not leader.held
        assert await standby.try_acquire()
    finally:
        await leader.close()
        await standby.close()
