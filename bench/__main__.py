"""`python -m bench [updates|broadcast|memory|answers|all]`: run benchmarks, write
bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any

from bench.common import record

DATABASES = ("sqlite", "postgres")


def databases(value: str) -> list[str]:
    chosen = [item.strip() for item in value.split(",") if item.strip()]
    unknown = set(chosen) - set(DATABASES)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown database {', '.join(sorted(unknown))}")
    return chosen


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    main.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=("all", "updates", "broadcast", "memory", "answers"),
    )
    main.add_argument("--db", type=databases, default=list(DATABASES), help="sqlite,postgres")
    main.add_argument("--updates", type=int, default=6000, help="updates per run (updates)")
    main.add_argument(
        "--concurrency", default="1,8", help="people at a time, comma-separated (updates)"
    )
    main.add_argument("--recipients", type=int, default=100_000, help="broadcast size")
    main.add_argument(
        "--small", type=int, default=10_000, help="the smaller broadcast, for memory growth"
    )
    main.add_argument("--no-kill", action="store_true", help="skip the run killed at 50 %%")
    main.add_argument(
        "--real-time",
        type=int,
        default=1_500,
        help="recipients of the real-time run with TelegramSender (0: skip)",
    )
    main.add_argument("--users", type=int, default=100_000, help="people in the database (memory)")
    main.add_argument("--dialogues", type=int, default=10_000, help="open dialogues (memory)")
    main.add_argument(
        "--people", default="25,50,100,200", help="people at once, comma-separated (answers)"
    )
    main.add_argument(
        "--alert-recipients",
        type=int,
        default=10_000,
        help="recipients of the alert people chat during (answers; 0: skip)",
    )
    main.add_argument(
        "--wave", type=int, default=20, help="people chatting at a time during the alert (answers)"
    )
    main.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="seconds a person takes before the next input (answers; 0: at once)",
    )
    return main


def report(name: str, result: dict[str, Any]) -> None:
    """Record one benchmark's results as soon as it is done, and show their summary."""
    path = record(name, result)
    print(f"{name}: {path}", flush=True)
    print(json.dumps(result.get("summary", result), indent=2, ensure_ascii=False)[:4000])


async def run(args: argparse.Namespace) -> None:
    if args.which in ("all", "updates"):
        from bench.updates import run as run_updates

        concurrency = [int(item) for item in args.concurrency.split(",")]
        report("updates", await run_updates(args.db, args.updates, concurrency))
    if args.which in ("all", "broadcast"):
        from bench.broadcast import run as run_broadcast

        for database in args.db:
            result = await run_broadcast(
                database, args.recipients, args.small, not args.no_kill, args.real_time
            )
            report(f"broadcast-{database}", result)
    if args.which in ("all", "memory"):
        from bench.memory import run as run_memory

        report("memory", await run_memory(args.db, args.users, args.dialogues))
    if args.which in ("all", "answers"):
        from bench.answers import run as run_answers

        people = [int(item) for item in args.people.split(",")]
        report(
            "answers",
            await run_answers(args.db, people, args.alert_recipients, args.wave, args.think),
        )


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    asyncio.run(run(parser().parse_args()))


if __name__ == "__main__":
    main()
