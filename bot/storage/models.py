"""SQLAlchemy models: the bot's whole memory."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on SQLite (which stores naive) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class User(Base):
    """A person on one transport. Before consent only the id and language are kept."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("transport", "platform_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transport: Mapped[str] = mapped_column(String(16))
    platform_id: Mapped[str] = mapped_column(String(255))
    chat_id: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(8))
    role: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(32))
    consent_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Granted by an admin (/coordinators); those named in the config are checked afresh.
    coordinator: Mapped[bool] = mapped_column(Boolean, default=False)
    weekly_tip: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class DialogueState(Base):
    """Where one user stands in one chat; saved with every step."""

    __tablename__ = "dialogue_states"
    __table_args__ = (UniqueConstraint("user_id", "chat_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(255))
    flow: Mapped[str] = mapped_column(String(64), default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The choices last shown, so that "2" or a label typed back can be resolved.
    choices: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConversationEntry(Base):
    """One inbound event or outbound reply."""

    __tablename__ = "conversation_log"
    __table_args__ = (Index("ix_conversation_log_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    transport: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(3))  # "in" or "out"
    kind: Mapped[str] = mapped_column(String(16))
    # Withheld (None) until the user has consented.
    text: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    """Who did what to shared state; never personal content."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(128), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ReportCounter(Base):
    """The last reference number handed out per year."""

    __tablename__ = "report_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer)


class Report(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    transport: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    # The reporter's region when they sent it: where the report belongs, even after they
    # move on or erase themselves.
    region: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="new")
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    contact_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    status_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None]


class Media(Base):
    """A stored file, named by its SHA-256: once, however many reports hold it (see
    `MediaLink`)."""

    __tablename__ = "media"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(255), default="")
    mime_type: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MediaLink(Base):
    """Who holds a stored file: a report, or a person (their /mydata export, for minutes).

    Files are stored once per SHA-256, and a forwarded photo is byte for byte the same in
    every report it is in: a file is deleted when its last link goes, never before."""

    __tablename__ = "media_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    report_id: Mapped[int | None] = mapped_column(
        ForeignKey("reports.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set for an export: the purge deletes the link (and the file) after this.
    expires_at: Mapped[datetime | None]


class OutboxMessage(Base):
    """A message for someone other than the person who caused it; written before sending.

    Its text (`payload`) is kept only while it waits: a row that was sent, failed for good
    or expired keeps what receipts and duplicate checks need (status, times, keys)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "transport", "next_attempt_at"),
        # Claiming: the oldest rows of one status and transport, in id order.
        Index("ix_outbox_claim", "status", "transport", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    transport: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # Whose personal data the payload carries, whoever it is addressed to (a report's copy
    # for the coordinators carries the reporter's): erasing that person deletes the row.
    subject_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # report, notice, alert
    payload: Mapped[list[Any]] = mapped_column(default=list)  # replies as JSON
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(255), default="")
    broadcast_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # Unique when set: the same broadcast never queues twice for one person.
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    platform_message_id: Mapped[str] = mapped_column(String(255), default="")
    # Set for alerts: the worker marks the row "expired" instead of sending it after this.
    expires_at: Mapped[datetime | None]


class AlertSubscription(Base):
    """Which alerts one person wants; no row means the defaults of their role and region."""

    __tablename__ = "alert_subscriptions"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    topics: Mapped[list[Any]] = mapped_column(default=list)
    regions: Mapped[list[Any]] = mapped_column(default=list)
    muted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Broadcast(Base):
    """A coordinator's alert: texts per language, audience, schedule and fan-out progress."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[int | None] = mapped_column(Integer)
    topic: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    # {language: text}; `language` is the first given, used when a person's is missing.
    texts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    language: Mapped[str] = mapped_column(String(8))
    roles: Mapped[list[Any]] = mapped_column(default=list)
    regions: Mapped[list[Any]] = mapped_column(default=list)
    transports: Mapped[list[Any]] = mapped_column(default=list)
    # scheduled, sending, sent, cancelled
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    send_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    # Keyset cursor of the fan-out: the last user id queued (resume after a crash).
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    fanned_out_at: Mapped[datetime | None]
    resent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Acknowledgement(Base):
    """'Understood' pressed under an alert: once per person and broadcast."""

    __tablename__ = "acknowledgements"
    __table_args__ = (UniqueConstraint("broadcast_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class HandledEvent(Base):
    """A platform update or event id that was handled: recorded in the event's own
    transaction, so a repeat (a retried webhook, a replayed sync) is dropped."""

    __tablename__ = "handled_events"
    __table_args__ = (Index("ix_handled_events_at", "at"),)

    transport: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsoleLogin(Base):
    """A one-time login link to the coordinator console: only its SHA-256 is kept; valid
    for minutes, used once."""

    __tablename__ = "console_logins"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A coordinator's console session (the cookie holds the secret, the row its SHA-256).
    Who it is and whether they still coordinate is read from `users` at every request."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The token every state-changing request carries (a hidden form field).
    csrf: Mapped[str] = mapped_column(String(64))
    # The console's language, when chosen there ("" = the person's language in the bot).
    language: Mapped[str] = mapped_column(String(8), default="")
    # What the last action answered, shown once on the next page (the bot's replies).
    flash: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ReportRead(Base):
    """A coordinator opened a report in the console: it is no longer marked unread for them."""

    __tablename__ = "report_reads"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    report_id: Mapped[int] = mapped_column(
        ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertTemplate(Base):
    """A saved alert text per topic ("tarpaulin slashing series on the A1"), in German and
    optionally English and Polish, that coordinators start an alert from."""

    __tablename__ = "alert_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    topic: Mapped[str] = mapped_column(String(32))
    # {language: text}, as a broadcast's texts.
    texts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Who saved it last (a coordinator's user id; no personal content).
    updated_by: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
