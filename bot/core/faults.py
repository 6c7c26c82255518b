"""Which failures of a transaction are worth another attempt."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

# PostgreSQL errors worth another attempt: serialization failure, deadlock, lock not
# available (lock_timeout), statement timeout, server shutting down, too many connections.
TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "53300"}


def transient(exc: BaseException) -> bool:
    """Whether a failed transaction may succeed when tried again: a busy or locked
    database, a lost connection, a serialization conflict."""
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError):
        state = str(getattr(exc.orig, "sqlstate", "") or "")
        return exc.connection_invalidated or state in TRANSIENT_SQLSTATES or state[:2] == "08"
    return isinstance(exc, (ConnectionError, TimeoutError))
