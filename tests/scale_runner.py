"""One bot instance in its own process, for the scale test and the broadcast benchmark.

    python -m tests.scale_runner --database-url URL --api http://127.0.0.1:PORT/bot
        --token 1:A [--scheduler] [--retry-seconds 0.5]

It runs what `sicherheitsbot run` runs for one Telegram bot, minus the long poll: the
outbox worker (sending to a Bot API test server through `BotApiSender`, or with
`--sender telegram` through the transport's PTB-based `TelegramSender`) and, with
`--scheduler`, the scheduler while this instance is the leader. It prints one line per
change of state on stdout: `ready`, `leader`, `standby`. SIGTERM stops it; the tests stop
the leader with SIGKILL.

`record` is a job for the scheduler (referenced by name in the job store): it writes an
audit row naming the instance that ran it (`SCALE_INSTANCE` in the environment).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from bot.config import load_settings
from bot.delivery.outbox import OutboxWorker, Sender
from bot.delivery.pacing import ChatLimiter, Limits
from bot.runtime import Runtime, open_runtime
from bot.scheduler import BotScheduler, scheduler_while_leader
from bot.storage import repos
from bot.storage.db import transaction
from tests.peers.botapi_sender import BotApiSender

INSTANCE_VARIABLE = "SCALE_INSTANCE"


async def record(label: str) -> None:
    """A scheduled job: one audit row `scale:<label>` with this instance's name."""
    current = BotScheduler.current
    if current is None:
        return
    async with transaction(current.runtime.sessions) as session:
        instance = os.environ.get(INSTANCE_VARIABLE, "?")
        await repos.audit(session, None, f"scale:{label}", instance, {})


def say(line: str) -> None:
    print(line, flush=True)


async def run(args: argparse.Namespace) -> None:
    settings = load_settings()
    settings.database.url = args.database_url
    settings.bot.data_dir = Path(args.data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    limits = Limits(
        args.overall_per_second, args.per_chat_per_second, window_seconds=1.0 / args.time_scale
    )
    async with open_runtime(settings) as runtime, contextlib.AsyncExitStack() as stack:
        sender: Sender
        if args.sender == "telegram":
            sender = await stack.enter_async_context(telegram_sender(runtime, args, limits))
        else:
            sender = BotApiSender(args.api, args.token, time_scale=args.time_scale)
            await stack.enter_async_context(sender)
        worker = OutboxWorker(
            runtime.sessions, sender, limits, batch=args.batch, lease_seconds=args.lease_seconds
        )
        task = asyncio.create_task(worker.run_forever(idle=0.1))
        leadership = None
        if args.scheduler:
            leadership = await stack.enter_async_context(
                scheduler_while_leader(runtime, retry_seconds=args.retry_seconds)
            )
        say("ready")
        said = ""
        while not stop.is_set():
            if leadership is not None and leadership.attempts:
                state = "leader" if leadership.held else "standby"
                if state != said:
                    say(state)
                    said = state
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def telegram_sender(
    runtime: Runtime, args: argparse.Namespace, limits: Limits
) -> AsyncIterator[Sender]:
    """The Telegram transport's own sender (PTB), as `sicherheitsbot run` uses it."""
    from telegram import Bot

    from bot.transports.telegram_outbound import TelegramSender

    bot = Bot(args.token, base_url=args.api, base_file_url=args.api.replace("/bot", "/file/bot"))
    sender = TelegramSender(runtime.core, ChatLimiter(limits))
    async with bot:
        sender.bot = bot
        yield sender


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--api", required=True, help="Bot API base URL, ending in /bot")
    parser.add_argument("--token", required=True)
    parser.add_argument("--data-dir", default="data/scale")
    parser.add_argument("--scheduler", action="store_true")
    parser.add_argument("--retry-seconds", type=float, default=5.0)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--overall-per-second", type=float, default=1000.0)
    parser.add_argument("--per-chat-per-second", type=float, default=100.0)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--lease-seconds", type=float, default=600.0)
    parser.add_argument(
        "--sender",
        choices=("lean", "telegram"),
        default="lean",
        help="lean: BotApiSender (aiohttp); telegram: the transport's TelegramSender (PTB)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
