"""`sicherheitsbot chat | run | db | config | content` — the command line."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from bot import logs
from bot.config import ConfigError, Settings, load_settings
from bot.core.i18n import ContentError

log = logging.getLogger("bot.cli")  # also when run as `python -m bot.cli`
# Broadcast numbers are database integers (32 bits on PostgreSQL).
LARGEST_ID = 2**31 - 1


def _settings(config: Path | None, db: str | None = None) -> Settings:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if db:
        url = db if "://" in db else f"sqlite+aiosqlite:///{Path(db).resolve()}"
        settings.database.url = url
    chosen = click.get_current_context().find_root().obj or {}
    logs.configure(
        chosen.get("log_level") or settings.logging.level,
        library_payloads=settings.logging.library_payloads,
        secrets=settings.secret_values(),
    )
    return settings


def _reachable(settings: Settings) -> None:
    """Refuse a deployment whose reports would reach no one, in one line."""
    from bot.core.doors import reach_problem
    from bot.transports.registry import doors

    problem = reach_problem(doors(settings))
    if problem is not None:
        raise click.ClickException(f"config error: {problem}")


def database_problem(exc: SQLAlchemyError) -> str:
    """The database's own first line about what went wrong (no statement, no parameters)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return (lines[0] if lines else type(cause).__name__)[:200]


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        asyncio.run(coroutine)
    except KeyboardInterrupt:
        click.echo("\nbye", err=True)
    except ContentError as exc:
        raise click.ClickException(f"content error: {exc}") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot open the database or data directory: {exc}") from exc
    except SQLAlchemyError as exc:
        # A full disk, a read-only file, a refused login: one line, no traceback.
        raise click.ClickException(f"cannot use the database: {database_problem(exc)}") from exc


CONFIG = click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="TOML settings file (default: built-in defaults and environment).",
)


@click.group()
@click.option(
    "--log-level",
    type=click.Choice(logs.LEVELS, case_sensitive=False),
    default=None,
    help="DEBUG, INFO, WARNING or ERROR (default: logging.level of the config, INFO).",
)
@click.option("-v", "--verbose", is_flag=True, help="Same as --log-level DEBUG.")
@click.pass_context
def main(context: click.Context, log_level: str | None, verbose: bool) -> None:
    """Chat assistant of the security partnership between police and transport trades."""
    chosen = log_level or ("DEBUG" if verbose else None)
    context.obj = {"log_level": chosen}
    # Until a command has read its config; it sets the level again from there.
    logs.configure(chosen or "INFO")


@main.command()
@CONFIG
@click.option("--user", default="driver", show_default=True, help="Who is talking.")
@click.option("--db", default=None, help="SQLite file or database URL.")
@click.option("--start", "start", default=None, help="Deep-link payload, e.g. taxi.")
def chat(config: Path | None, user: str, db: str | None, start: str | None) -> None:
    """Talk to the bot in the terminal (no token, no network)."""
    from bot.runtime import open_runtime
    from bot.transports.console import run_chat

    if not user.strip() or len(user) > 64:
        raise click.BadParameter("give a name of 1 to 64 characters", param_hint="--user")
    settings = _settings(config, db)
    _reachable(settings)

    async def session() -> None:
        async with open_runtime(settings) as runtime:
            await run_chat(runtime.core, user.strip(), start, sys.stdin)

    _run(session())


@main.command()
@CONFIG
def run(config: Path | None) -> None:
    """Serve every transport enabled in the config until stopped."""
    settings = _settings(config)
    _reachable(settings)
    try:
        _run(_serve_with_activity(settings))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


async def _serve_with_activity(settings: Settings) -> None:
    """`serve`, with the start line and the activity summary once a minute at INFO."""
    from bot.service import serve

    enabled = [
        name for name, on in (("telegram", settings.telegram.enabled),
                              ("matrix", settings.matrix.enabled)) if on
    ]  # fmt: skip
    backend = settings.database_url.split(":", 1)[0].split("+", 1)[0]
    log.info(
        "sicherheitsbot starting: database %s, transports %s, log level %s",
        backend,
        ", ".join(enabled) or "none",
        logging.getLevelName(logging.getLogger().level),
    )
    activity = asyncio.create_task(logs.report_activity())
    try:
        await serve(settings)
    finally:
        activity.cancel()
        await asyncio.gather(activity, return_exceptions=True)
    log.info("sicherheitsbot stopped")


@main.command(name="console-link")
@CONFIG
@click.option("--db", default=None, help="SQLite file or database URL.")
@click.argument("identity")
def console_link(config: Path | None, db: str | None, identity: str) -> None:
    """Print a one-time login link to the web console for TRANSPORT:ID (e.g.
    telegram:123456789, console:leitstelle), as `/console` gives it in the chat."""
    from bot.transports.registry import doors

    settings = _settings(config, db)
    web = next(door for door in doors(settings) if door.name == "web")
    if not web.valid_id(identity):
        raise click.BadParameter(
            f"expected TRANSPORT:ID, e.g. {web.id_example} or console:leitstelle",
            param_hint="IDENTITY",
        )
    transport, _, platform_id = identity.partition(":")

    async def make() -> None:
        from bot.runtime import open_runtime
        from bot.storage import console, repos
        from bot.storage.db import transaction
        from bot.storage.models import utcnow

        async with open_runtime(settings) as runtime, transaction(runtime.sessions) as session:
            user = await repos.get_or_create_user(
                session, transport, platform_id, "", settings.bot.default_language
            )
            token = await console.create_login(session, user.id, utcnow())
            await repos.audit(session, None, "console_link", "", {"for": user.id})
            if not runtime.core.is_coordinator(user):
                click.echo(f"note: {identity} is not a coordinator now: the link will be "
                           "refused unless that changes", err=True)  # fmt: skip
        if not settings.web.enabled:
            click.echo("note: web.enabled is false: `run` does not serve the console", err=True)
        click.echo(settings.web.login_link(token))

    _run(make())


@main.group(name="db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command()
@CONFIG
@click.option("--db", default=None, help="SQLite file or database URL.")
def upgrade(config: Path | None, db: str | None) -> None:
    """Bring the database schema up to date."""
    from bot.storage.db import upgrade as run_upgrade

    settings = _settings(config, db)
    _run(run_upgrade(settings.database_url))
    click.echo("database is up to date")


@main.group(name="config")
def config_group() -> None:
    """Configuration."""


@config_group.command()
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def check(path: Path) -> None:
    """Validate a config file; a secret written into it is an error, and so is a
    deployment whose reports would reach no one."""
    _reachable(_settings(path))
    click.echo(f"{path}: ok")


@main.group(name="content")
def content_group() -> None:
    """Texts in content/."""


@content_group.command(name="check")
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False), default=None)
def content_check(directory: Path | None) -> None:
    """Prove every language is complete and every text fits the platforms."""
    from bot.core.content_check import check_content
    from bot.web.texts import missing_console_texts

    problems = check_content(directory) or missing_console_texts(directory)
    for problem in problems:
        click.echo(f"✗ {problem}", err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in content")
    click.echo("content ok")


@main.group(name="broadcast")
def broadcast_group() -> None:
    """Coordinator alerts."""


@broadcast_group.command(name="export")
@CONFIG
@click.option("--db", default=None, help="SQLite file or database URL.")
@click.option("--cap", "cap_id", required=True, help="Number of the broadcast to export.")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file instead of standard output.",
)
def export(config: Path | None, db: str | None, cap_id: str, output: Path | None) -> None:
    """Write an alert as an OASIS CAP 1.2 XML document."""
    from bot.cap import cap_document
    from bot.core.i18n import Content
    from bot.storage.db import create_engine, session_factory
    from bot.storage.models import Broadcast

    raw = cap_id.strip().lstrip("#")
    # ASCII digits only: "²" is a digit to str.isdigit, and not to int().
    if not re.fullmatch(r"[0-9]{1,20}", raw):
        raise click.ClickException(f"not a broadcast number: {cap_id[:32]!r}")
    if int(raw) > LARGEST_ID:
        raise click.ClickException(f"no broadcast #{raw}")
    settings = _settings(config, db)
    content = Content(settings.bot.content_dir, settings.bot.default_language)

    async def load() -> bytes | None:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                item = await session.get(Broadcast, int(raw))
                return None if item is None else cap_document(item, settings, content)
        finally:
            await engine.dispose()

    try:
        document = asyncio.run(load())
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot read the database: {database_problem(exc)}") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot read the database: {exc}") from exc
    if document is None:
        raise click.ClickException(f"no broadcast #{raw}")
    if output is None:
        click.echo(document.decode())
    else:
        output.write_bytes(document)
        click.echo(f"written to {output}", err=True)


if __name__ == "__main__":
    main()
