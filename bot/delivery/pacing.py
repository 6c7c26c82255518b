"""Sending within a platform's flood limits, as the platform counts them.

Two kinds of messages share a chat: an **answer** to someone who just wrote, and a **bulk**
message (an alert to thousands, a digest, a report for the coordinators) from the outbox.
Telegram's 30 messages a second are a limit on bulk notifications: answers do not take
from that budget, so people chatting are never slowed by an alert going out, and an alert
is not slowed by them. Every message keeps its chat's own limit (one a second for a
private chat; 20 a minute for a group), and there an answer goes before bulk messages
waiting for the same chat, and a private chat may take a short burst. A flood-control
answer (429) to a bulk message holds every send, of both kinds; one to an answer holds
that chat.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


@dataclass
class Limits:
    """A platform's flood limits."""

    # Bulk messages, all chats together, per second.
    overall_per_second: float = 30.0
    per_chat_per_second: float = 1.0
    # A private chat takes this many messages at once, and then `per_chat_per_second` as
    # the burst refills (Telegram: "we may allow short bursts"). 1: evenly spaced.
    chat_burst: int = 1
    # Chats with a negative id (Telegram groups) have a limit of their own; 0: the same
    # as a private chat.
    group_per_minute: float = 0.0
    # The window the platform counts in (a second; shorter when a test compresses time).
    window_seconds: float = 1.0
    # The platform counts arrivals in sliding windows, and a request's way there varies by a
    # little: we count our windows this much longer than the platform's.
    margin: float = 0.02
    # The same for one chat's messages after a burst (`chat_burst`): a burst's answers
    # leave together and arrive one after another, so the first can arrive tens of
    # milliseconds after it was granted and the one after the burst right on time, too
    # soon by the platform's count (Telegram then holds the chat for a whole second).
    chat_margin: float = 0.07


class SlidingWindow:
    """At most `limit` grants in any `span` seconds, evenly spaced, in the order asked —
    except that an urgent request (an answer) goes before the waiting others.

    This is the platform's own rule. A leaky bucket (aiolimiter) does not fit it: a bucket
    holding B admits B + rate * T in a window of T, so it either bursts past the limit or
    runs well below it, and a bucket of one loses each late wake-up for good. Grants are
    spaced evenly within the window (a burst queues up on its way and arrives bunched);
    a late wake-up may be made up by the next ones, up to `slack`."""

    def __init__(self, limit: int, span: float) -> None:
        self.limit = max(1, limit)
        self.span = span
        self.interval = span / self.limit
        self.slack = self.interval
        self.turn = asyncio.Lock()  # ordinary waiters queue in order
        self.urgent_turn = asyncio.Lock()  # and urgent ones in a lane of their own
        self.held_until = 0.0
        self._granted: deque[float] = deque(maxlen=self.limit)
        self._due = 0.0
        self._urgent = 0
        self._no_urgent = asyncio.Event()
        self._no_urgent.set()

    def hold(self, seconds: float) -> None:
        """Grant nothing for `seconds` from now (the hold only ever grows)."""
        now = asyncio.get_running_loop().time()
        self.held_until = max(self.held_until, now + seconds)

    async def held(self) -> None:
        """Sleep while a hold lasts (it may grow meanwhile)."""
        loop = asyncio.get_running_loop()
        while True:
            wait = self.held_until - loop.time()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def ready(self) -> None:
        """Sleep until one more may go."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            wait = max(self._due - self.slack, self.held_until) - now
            if len(self._granted) == self.limit:
                wait = max(wait, self._granted[0] + self.span - now)
            if wait <= 0:
                return
            # A hold may begin or grow while this sleeps: look again after.
            await asyncio.sleep(wait)

    def record(self) -> None:
        now = asyncio.get_running_loop().time()
        self._granted.append(now)
        self._due = max(self._due, now) + self.interval

    async def acquire(self, urgent: bool = False) -> None:
        """Wait for a grant. Between `ready` returning and `record` nothing awaits, so two
        lanes never grant the same slot."""
        if urgent:
            self._urgent += 1
            self._no_urgent.clear()
            try:
                async with self.urgent_turn:
                    await self.ready()
                    self.record()
            finally:
                self._urgent -= 1
                if not self._urgent:
                    self._no_urgent.set()
            return
        async with self.turn:
            while True:
                await self._no_urgent.wait()
                await self.ready()
                if not self._urgent:  # no answer came for this slot while we slept
                    self.record()
                    return


class Burst(SlidingWindow):
    """`limit` grants at once, then one per `interval` as the burst refills (a token
    bucket, counted as GCRA: one theoretical arrival time). Telegram allows a chat "short
    bursts" over one message a second; how it counts them is not documented."""

    def __init__(self, limit: int, interval: float) -> None:
        super().__init__(limit, limit * interval)
        self.interval = interval
        self._tat = 0.0  # when the burst is whole again

    async def ready(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            allowed = self._tat - (self.limit - 1) * self.interval
            wait = max(allowed, self.held_until) - loop.time()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def record(self) -> None:
        now = asyncio.get_running_loop().time()
        self._tat = max(self._tat, now) + self.interval


def window(rate: float, limits: Limits, span_seconds: float | None = None) -> SlidingWindow:
    """`rate` per second as the platform counts it: whole messages per window, or one
    message per 1/rate seconds when less than one fits a window."""
    base = limits.window_seconds if span_seconds is None else span_seconds
    span = base * (1.0 + limits.margin)
    if rate * base >= 1:
        return SlidingWindow(int(rate * base), span)
    return SlidingWindow(1, (1.0 + limits.margin) / rate)


class ChatLimiter:
    """Sliding windows: one for bulk messages overall, one per chat (see the module)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.overall = window(limits.overall_per_second, limits)
        self.chats: dict[str, SlidingWindow] = {}

    def pause(self, seconds: float, chat_id: str | None = None) -> None:
        """Hold every request until `seconds` from now: the platform counts them all; or,
        after a flood-control answer to an answer (not bulk), only that chat's.

        Unlike PTB's AIORateLimiter up to 22.8 (python-telegram-bot issue 5338), the pause
        is not ended early by other requests finishing; it only ever grows. Nothing is
        granted during it, so the requests waiting do not all go at once when it ends.
        """
        (self.overall if chat_id is None else self._chat(chat_id)).hold(seconds)

    def _chat(self, chat_id: str) -> SlidingWindow:
        chat = self.chats.get(chat_id)
        if chat is None:
            if len(self.chats) > 10_000:
                self.chats.clear()  # old windows have passed by now; memory stays flat
            limits = self.limits
            if limits.group_per_minute and chat_id.startswith("-"):
                per_window = limits.group_per_minute * limits.window_seconds
                chat = window(per_window / 60, limits, 60 * limits.window_seconds)
            elif limits.chat_burst > 1:
                interval = limits.window_seconds * (1.0 + limits.chat_margin)
                chat = Burst(limits.chat_burst, interval / limits.per_chat_per_second)
            else:
                chat = window(limits.per_chat_per_second, limits)
            self.chats[chat_id] = chat
        return chat

    async def acquire(self, chat_id: str, bulk: bool = True) -> None:
        """Wait until one more message may go to the chat: a bulk one takes a place in the
        overall window first; an answer only waits out a flood-control pause, and goes
        first in its chat."""
        if bulk:
            await self.overall.acquire()
        else:
            await self.overall.held()
        await self._chat(chat_id).acquire(urgent=not bulk)
