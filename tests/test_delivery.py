"""Delivery through the outbox to a Bot API server that enforces flood control and fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.core.events import Reply
from bot.delivery.pacing import ChatLimiter, Limits
from bot.runtime import Runtime
from bot.storage import repos
from bot.storage.db import transaction
from bot.storage.models import OutboxMessage, User, utcnow
from tests.peers.botapi import BotApiServer, FloodLimits
from tests.telegram_fixtures import TOKEN, Harness
from tests.test_botapi_server import TOKEN as BOT_TOKEN
from tests.test_botapi_server import USER as PERSON
from tests.test_botapi_server import bot_for


async def queue_alerts(
    runtime: Runtime, server: BotApiServer, count: int, first_id: int = 5000
) -> list[int]:
    """`count` consented Telegram users (known to the server), each with one queued alert."""
    chat_ids = list(range(first_id, first_id + count))
    for chat_id in chat_ids:
        server.add_user(chat_id, first_name=f"Fahrer {chat_id}", language_code="de")
    async with transaction(runtime.sessions) as session:
        for chat_id in chat_ids:
            user = User(
                transport="telegram",
                platform_id=str(chat_id),
                chat_id=str(chat_id),
                language="de",
                consent_at=utcnow(),
                active=True,
                coordinator=False,
            )
            session.add(user)
            await session.flush()
            await repos.queue_outbox(
                session,
                transport="telegram",
                chat_id=str(chat_id),
                user_id=user.id,
                kind="alert",
                replies=[Reply(f"Warnung an {chat_id}")],
                dedupe_key=f"test:{chat_id}",
            )
    return chat_ids


async def wait_until_delivered(runtime: Runtime, limit: float = 60.0) -> list[OutboxMessage]:
    async def settled() -> list[OutboxMessage]:
        while True:
            async with runtime.sessions() as session:
                rows = list((await session.scalars(select(OutboxMessage))).all())
            if all(row.status in ("sent", "failed") for row in rows):
                return rows
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(settled(), limit)


@pytest.fixture
async def flaky_server() -> AsyncIterator[BotApiServer]:
    # Telegram's limits, ten times faster; 5 % of sends fail with a 502.
    peer = BotApiServer(
        flood_limits=FloodLimits(overall_per_second=30, private_chat_per_second=1, time_scale=10),
        transient_failure_rate=0.05,
        seed=7,
    )
    peer.add_bot(TOKEN)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


async def test_alerts_arrive_exactly_once_despite_flood_control_and_failures(
    runtime: Runtime, flaky_server: BotApiServer
) -> None:
    chat_ids = await queue_alerts(runtime, flaky_server, 80)
    harness = Harness(runtime, flaky_server)
    try:
        await harness.start(limits=Limits(overall_per_second=300, per_chat_per_second=10))
        rows = await wait_until_delivered(runtime)
    finally:
        await harness.stop()
    assert [row.status for row in rows] == ["sent"] * 80
    for chat_id in chat_ids:
        received = [m for m in flaky_server.messages_to(chat_id) if not m.deleted]
        assert [m.plain_text for m in received] == [f"Warnung an {chat_id}"]
    assert any(call.status == 502 for call in flaky_server.calls)  # failures really happened


async def test_retry_after_holds_every_send_for_the_whole_pause(runtime: Runtime) -> None:
    server = BotApiServer()
    server.add_bot(TOKEN)
    await server.start()
    harness = Harness(runtime, server)
    chat_ids = await queue_alerts(runtime, server, 4)
    server.retry_after_next(2, method="sendMessage")
    loop = asyncio.get_running_loop()
    seen: dict[str, float] = {}

    async def watch() -> None:
        while "next_send" not in seen:
            for call in server.calls:
                if call.status == 429:
                    seen.setdefault("throttled", loop.time())
                elif "throttled" in seen and call.status == 200 and call.method == "sendMessage":
                    seen.setdefault("next_send", loop.time())
            await asyncio.sleep(0.02)

    try:
        # One send a second: without the pause the next would follow 1 s after the 429.
        await harness.start(limits=Limits(overall_per_second=1, per_chat_per_second=1))
        await asyncio.wait_for(watch(), 20)
        rows = await wait_until_delivered(runtime)
    finally:
        await harness.stop()
        await server.stop()
    assert seen["next_send"] - seen["throttled"] >= 1.8
    assert [row.status for row in rows] == ["sent"] * 4
    assert sorted(m.chat_id for m in server.sent_messages()) == chat_ids


async def test_sends_stay_within_telegrams_sliding_window_also_after_a_pause(
    runtime: Runtime,
) -> None:
    # Telegram's real limits, in real time: 30 a second overall, one a second per chat,
    # counted in sliding windows at the server. The only 429 is the one planted: the
    # worker neither bursts at the start nor releases the queue at once after the pause.
    server = BotApiServer(flood_limits=FloodLimits(overall_per_second=30))
    server.add_bot(TOKEN)
    await server.start()
    harness = Harness(runtime, server)
    chat_ids = await queue_alerts(runtime, server, 75)
    server.retry_after_next(1, method="sendMessage")
    try:
        # A wider margin than the default 2 %: a busy test machine may hold a request
        # back for a few tens of milliseconds, and this test is about bursts, not margins.
        limits = Limits(overall_per_second=30, per_chat_per_second=1, margin=0.05)
        await harness.start(limits=limits)
        rows = await wait_until_delivered(runtime)
    finally:
        await harness.stop()
        await server.stop()
    statuses = [call.status for call in server.calls if call.method == "sendMessage"]
    assert statuses.count(429) == 1
    assert [row.status for row in rows] == ["sent"] * 75
    assert sorted(m.chat_id for m in server.sent_messages()) == chat_ids


async def test_an_answer_is_sent_before_queued_alert_rows(runtime: Runtime) -> None:
    # The bot's bulk budget is ten a second and 40 alerts wait for it; someone who writes
    # meanwhile is answered at once, not after the alerts queued before them (Telegram's
    # 30 a second are a limit on bulk notifications; the server counts answers to people
    # who just wrote apart from it).
    server = BotApiServer(
        flood_limits=FloodLimits(overall_per_second=10, replies_exempt_seconds=10)
    )
    server.add_bot(TOKEN)
    await server.start()
    harness = Harness(runtime, server)
    chat_ids = await queue_alerts(runtime, server, 40)
    person = 4242

    def alerts() -> int:
        return sum(1 for m in server.sent_messages() if m.chat_id in chat_ids)

    try:
        await harness.start(limits=Limits(overall_per_second=10, per_chat_per_second=1))
        await server.wait_until(lambda: alerts() >= 3, 10)
        before = alerts()
        server.send_text(person, "/help")
        await server.wait_for_message(person, timeout=10)
        between = alerts() - before
        rows = await wait_until_delivered(runtime)
    finally:
        await harness.stop()
        await server.stop()
    assert between <= 2, f"{between} alert messages went before the answer"
    assert len(chat_ids) - before - between >= 30, "the answer came while the alert was sending"
    assert [row.status for row in rows] == ["sent"] * 40
    assert sorted(m.chat_id for m in server.sent_messages() if m.chat_id != person) == chat_ids
    assert all(call.status != 429 for call in server.calls)


async def test_in_a_chat_an_answer_goes_before_the_bulk_messages_waiting_for_it() -> None:
    # One message per chat every 0.2 s.
    limiter = ChatLimiter(Limits(overall_per_second=100, per_chat_per_second=5, window_seconds=0.2))
    order: list[str] = []

    async def send(name: str, bulk: bool) -> None:
        await limiter.acquire("7", bulk=bulk)
        order.append(name)

    waiting = [asyncio.create_task(send(f"alert {n}", True)) for n in range(1, 4)]
    await asyncio.sleep(0.05)  # the first alert went; the others wait for the chat
    await asyncio.gather(*waiting, send("answer", False))
    assert order == ["alert 1", "answer", "alert 2", "alert 3"]


async def test_answers_do_not_take_from_the_bulk_budget() -> None:
    # One bulk message per 0.2 s overall: an answer asked for after a queued alert still
    # goes before it (it waits only for its own chat).
    limiter = ChatLimiter(Limits(overall_per_second=5, per_chat_per_second=5, window_seconds=0.2))
    order: list[str] = []

    async def send(name: str, chat: str, bulk: bool) -> None:
        await limiter.acquire(chat, bulk=bulk)
        order.append(name)

    first = asyncio.create_task(send("alert to a", "a", True))
    queued = asyncio.create_task(send("alert to c", "c", True))
    await asyncio.sleep(0.05)
    await asyncio.gather(first, queued, send("answer to b", "b", False))
    assert order == ["alert to a", "answer to b", "alert to c"]


async def test_a_flood_wait_on_an_answer_holds_only_its_chat() -> None:
    limiter = ChatLimiter(Limits(overall_per_second=100, per_chat_per_second=100))
    limiter.pause(30, "a")  # a 429 on an answer in chat a
    await asyncio.wait_for(limiter.acquire("b", bulk=False), 1)
    await asyncio.wait_for(limiter.acquire("c", bulk=True), 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire("a", bulk=False), 0.3)


async def test_a_burst_whose_first_answer_was_slow_on_its_way_meets_no_flood_control() -> None:
    """Telegram counts a chat's messages as they arrive. Three answers go out quickly (a
    burst) and the first arrives 40 ms after it left (a busy loop, other requests before
    it): the fourth, granted a second after the first left, must not arrive less than a
    second after the first arrived, or the chat is held for a whole second."""
    limits = FloodLimits(private_chat_burst=3)
    limiter = ChatLimiter(Limits(30, 1, chat_burst=3))
    async with BotApiServer(flood_limits=limits) as server:
        server.add_bot(BOT_TOKEN)
        server.add_user(PERSON)
        async with bot_for(server) as bot:

            async def answer(text: str, on_its_way: float = 0.0) -> None:
                await limiter.acquire(str(PERSON), bulk=False)
                await asyncio.sleep(on_its_way)
                await bot.send_message(PERSON, text)

            await answer("a", on_its_way=0.04)
            for text in ("b", "c", "d"):
                await answer(text)
        assert [m.text for m in server.messages_to(PERSON)] == ["a", "b", "c", "d"]
        assert not [call for call in server.calls if call.status == 429]
