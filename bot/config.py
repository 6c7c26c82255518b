"""Typed settings: a TOML file, overridden by environment variables.

Secrets (tokens, passwords, a password inside `database.url`) are read only from the
environment or from files in a secrets directory: a config file that holds one is refused
with one line naming the key and the environment variable to use instead.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import ArgumentError

from bot.logs import level_name

ENV_PREFIX = "SICHERHEITSBOT_"
SECRET_KEYS = (
    ("telegram", "token"),
    ("telegram", "webhook_secret"),
    ("matrix", "password"),
    ("matrix", "access_token"),
)


class Section(BaseModel):
    # No inf or nan: a limit of "inf" megabytes is no limit, and crashes where it is used.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class BotSettings(Section):
    data_dir: Path = Path("data")
    default_language: Literal["de", "en", "pl"] = "de"
    timezone: str = "Europe/Berlin"
    emergency_number: str = Field(default="110", pattern=r"^[0-9]{2,6}$")
    reports_watched_around_the_clock: bool = False
    operator: str = "Sicherheitspartnerschaft NRW"
    privacy_contact: str = "datenschutz@example.org"
    reference_prefix: str = Field(default="SP", pattern=r"^[A-Z]{1,6}$")
    content_dir: Path | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class DatabaseSettings(Section):
    url: str = ""
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _supported_driver(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value


class ConsoleSettings(Section):
    # The terminal as a transport of the deployment (reports and notices are queued for
    # its users). Unset: on when neither Telegram nor Matrix is enabled.
    enabled: bool | None = None
    coordinators: list[str] = Field(default_factory=lambda: ["leitstelle"])
    # Admins add and remove coordinators with /coordinators (see README).
    admins: list[str] = Field(default_factory=lambda: ["leitstelle"])


class TelegramSettings(Section):
    enabled: bool = False
    token: SecretStr | None = None
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_secret: SecretStr | None = None
    coordinators: list[int] = Field(default_factory=list)
    admins: list[int] = Field(default_factory=list)
    coordinator_chat_id: int | None = None


class MatrixSettings(Section):
    enabled: bool = False
    homeserver: str = ""
    user_id: str = ""
    password: SecretStr | None = None
    access_token: SecretStr | None = None
    device_id: str = ""
    store_dir: Path | None = None
    encryption: bool = True
    coordinators: list[str] = Field(default_factory=list)
    admins: list[str] = Field(default_factory=list)
    coordinator_room: str = ""
    allowed_servers: list[str] = Field(default_factory=list)
    messages_per_second: float = Field(default=5.0, gt=0)
    # An encrypted message whose key has not come within this time: its sender is told
    # (once) that it could not be read.
    unreadable_notice_seconds: float = Field(default=15.0, gt=0)


class LimitSettings(Section):
    messages_per_minute: int = Field(default=120, ge=1)
    reports_per_hour: int = Field(default=5, ge=1)
    max_text_length: int = Field(default=2000, ge=10, le=4000)
    max_attachments: int = Field(default=5, ge=0, le=20)
    max_attachment_mb: float = Field(default=20.0, gt=0, le=2000)


class RetentionSettings(Section):
    """How long each kind of personal data is kept (README: "What is stored, for how long")."""

    conversation_days: int = Field(default=90, ge=1)
    closed_report_days: int = Field(default=365, ge=1)
    media_days: int = Field(default=365, ge=1)
    # A dialogue left untouched this long (a report begun, never sent) is discarded.
    draft_days: int = Field(default=7, ge=1)
    # Who never agreed to the privacy notice (only id and language are kept).
    unconsented_days: int = Field(default=30, ge=1)
    # Who blocked the bot and was not seen since: erased as /delete_me would.
    inactive_user_days: int = Field(default=365, ge=1)
    # A message not delivered by then expires and loses its text.
    undelivered_days: int = Field(default=7, ge=1)
    # Delivery records (without text) and alerts past their expiry, for receipts.
    delivery_days: int = Field(default=90, ge=1)
    audit_days: int = Field(default=365, ge=1)
    # A /mydata export file is deleted this long after it was made.
    export_minutes: int = Field(default=10, ge=1, le=1440)
    on_erasure: Literal["anonymise", "erase"] = "anonymise"


class SchedulerSettings(Section):
    report_reminder_minutes: int = Field(default=30, ge=1)
    urgent_resend_minutes: int = Field(default=30, ge=1)
    misfire_grace_minutes: int = Field(default=60, ge=1)
    digest_hour: int = Field(default=7, ge=0, le=23)


class WebSettings(Section):
    # host:port of the HTTP server with /healthz, /readyz and /metrics; "" switches it off.
    listen: str = "127.0.0.1:8080"
    # /readyz fails while a due outbox message has waited longer than this; 0: not checked.
    max_outbox_lag_seconds: float = Field(default=900.0, ge=0)
    # The coordinator console (/console/) on the same server.
    enabled: bool = False
    # Where people reach the server (behind a reverse proxy: "https://bot.example.org");
    # login links are built on it. "": http:// + listen. https:// makes cookies Secure.
    public_url: str = Field(default="", pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$")
    # How long a console session lasts after logging in.
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Map tiles ({z}/{x}/{y}); "" shows the markers on a blank map (a closed network
    # without a tile server).
    tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    tile_attribution: str = "© OpenStreetMap contributors"
    # Reverse proxies in front of the console (addresses or networks, e.g. ["127.0.0.1"]):
    # for requests from them, the client is the last address of X-Forwarded-For that is not
    # one of them (refused logins are counted per client). [] believes no such header.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        if value:
            listen_address(value)
        return value

    @property
    def console_served(self) -> bool:
        """The console is on, and the server that serves it."""
        return self.enabled and bool(self.listen)

    @property
    def host(self) -> str:
        return listen_address(self.listen)[0]

    @property
    def port(self) -> int:
        return listen_address(self.listen)[1]

    @property
    def base_url(self) -> str:
        """The server's address as people reach it, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host, port = listen_address(self.listen or "127.0.0.1:8080")
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def login_link(self, token: str) -> str:
        """The console's one-time login link for `token` (see bot/web/auth.py)."""
        return f"{self.base_url}/console/login/{token}"


def listen_address(value: str) -> tuple[str, int]:
    """(host, port) of "host:port" ("[::1]:8080" for IPv6), or ValueError."""
    hint = 'expected host:port such as "127.0.0.1:8080", or "" to switch the server off'
    host, colon, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(hint)  # an IPv6 address needs brackets: [::1]:8080
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(hint)
    if any(char.isspace() or char in "/[]@" for char in host):
        raise ValueError(hint)
    return host, int(port)


class LoggingSettings(Section):
    # DEBUG, INFO, WARNING or ERROR; `--log-level` overrides it.
    level: str = "INFO"
    # Let the libraries (PTB, httpx, matrix-nio, SQLAlchemy) log below their floors: their
    # lines then carry message texts, locations and tokens. For a debugging session only.
    library_payloads: bool = False

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        return level_name(value)


class Settings(BaseSettings):
    """Every setting of one deployment; see config.example.toml."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        secrets_dir=os.environ.get(f"{ENV_PREFIX}SECRETS_DIR") or None,
    )
    toml_path: ClassVar[Path | None] = None

    bot: BotSettings = Field(default_factory=BotSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    matrix: MatrixSettings = Field(default_factory=MatrixSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_path))
        # Files named like the variables, SICHERHEITSBOT_TELEGRAM__TOKEN: nested keys too.
        sources.append(NestedSecretsSettingsSource(file_secret_settings))
        return tuple(sources)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.bot.data_dir / 'sicherheitsbot.db').resolve()}"

    @property
    def media_dir(self) -> Path:
        return self.bot.data_dir / "media"

    def secret_values(self) -> list[str]:
        """The secrets in effect, for the log formatter to take out of every line."""
        found = [
            secret.get_secret_value()
            for secret in (
                self.telegram.token,
                self.telegram.webhook_secret,
                self.matrix.password,
                self.matrix.access_token,
            )
            if secret is not None
        ]
        if self.database.url:
            try:
                password = make_url(self.database.url).password
            except ArgumentError:
                password = None
            if password:
                found.append(str(password))
        return found


class ConfigError(Exception):
    """A configuration problem, described in one plain line."""


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against config.example.toml)"
    if first["type"] == "missing":
        message = "required but missing"
    return f"{key}: {message}"


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path} is nested too deeply to be a config file") from exc


def _refuse_secrets(path: Path, data: dict[str, Any]) -> None:
    """A secret written into the file stops start-up: it would end up in backups, in
    version control and in the hands of whoever may read the configuration."""
    for key in _secrets_in(data):
        variable = f"{ENV_PREFIX}{key.upper().replace('.', '__')}"
        what = "a password in the URL" if key == "database.url" else "a secret"
        raise ConfigError(
            f"config error in {key}: {what} is not read from {path.name}; set {variable} "
            f"in the environment (or a file {variable} in {ENV_PREFIX}SECRETS_DIR)"
        )


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from `path` (optional) and the environment, or raise ConfigError."""
    if path is not None:
        _refuse_secrets(path, _read_toml(path))
    Settings.toml_path = path
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"config error in {_describe(exc)}") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path} is nested too deeply to be a config file") from exc
    finally:
        Settings.toml_path = None
    _check_enabled_transports(settings)
    return settings


def _check_enabled_transports(settings: Settings) -> None:
    if settings.telegram.enabled and settings.telegram.token is None:
        raise ConfigError(
            f"config error in telegram.token: required when telegram.enabled is true; "
            f"set {ENV_PREFIX}TELEGRAM__TOKEN"
        )
    telegram = settings.telegram
    if telegram.enabled and telegram.mode == "webhook" and not telegram.webhook_url:
        raise ConfigError("config error in telegram.webhook_url: required in webhook mode")
    matrix = settings.matrix
    if matrix.enabled:
        if not matrix.homeserver or not matrix.user_id:
            raise ConfigError("config error in matrix.homeserver/matrix.user_id: required")
        if matrix.password is None and matrix.access_token is None:
            raise ConfigError(
                f"config error in matrix.password: set {ENV_PREFIX}MATRIX__PASSWORD "
                f"or {ENV_PREFIX}MATRIX__ACCESS_TOKEN"
            )


def _secrets_in(data: dict[str, Any]) -> list[str]:
    found = []
    for section, key in SECRET_KEYS:
        part = data.get(section)
        if isinstance(part, dict) and part.get(key):
            found.append(f"{section}.{key}")
    database = data.get("database")
    url = database.get("url") if isinstance(database, dict) else None
    if isinstance(url, str) and url:
        try:
            password = make_url(url).password
        except ArgumentError:
            password = None  # not a URL at all: validation says so
        if password:
            found.append("database.url")
    return found


def secrets_in_file(path: Path) -> list[str]:
    """Names of secret keys written into a TOML file (they belong in the environment)."""
    return _secrets_in(_read_toml(path))
