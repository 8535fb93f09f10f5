"""Typed errors. Each message says what went wrong and what to do next."""


class SmartlabelError(Exception):
    """Base class: the CLI prints these as one clear line and exits non-zero."""


class ConfigError(SmartlabelError):
    """A setting has a value we cannot use."""


class DatabaseUnavailable(SmartlabelError):
    """The database cannot be reached."""


class QueueError(SmartlabelError):
    """A labelling-queue operation was refused."""


class UnknownLabelError(QueueError, ValueError):
    pass


class UnknownItemError(QueueError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NotHeldError(QueueError):
    """The worker submits or skips an item that was never handed to them."""


class AlreadyLabelledError(QueueError):
    """The worker already labelled this item (a double click or a stale tab)."""


class NothingToUndoError(QueueError, IndexError):
    pass


class LinkNotValidError(QueueError):
    """The personal link's key is missing, malformed, unknown, rotated away or disabled."""


class LabellerError(SmartlabelError):
    """A `smartlabel labellers` command was refused (name taken, unknown name, bad name)."""


class ImportFileError(SmartlabelError):
    """A file to import is malformed; the message names file, line and column."""


class QualityInputError(SmartlabelError, ValueError):
    """Inputs to the label-quality pass do not fit together (shapes, unknown labels)."""


# --- one line for any exception ------------------------------------------------------------

BUSY = "busy"                # the database server (or this process's pool) has no free connection
UNREACHABLE = "unreachable"  # the database cannot be reached (or refused the login)
NO_SCHEMA = "no schema"      # the database has no smartlabel tables
SCHEMA = "schema"            # a statement the schema does not fit (not migrated to this code?)
PRIVILEGE = "privilege"      # the database role may not do this (least-privilege roles)
OURS = "ours"                # a SmartlabelError: its message already says what to do
OTHER = "other"

# What a labeller reads when the server has no connection left for their page: their click
# is kept, and Retry sends it again.
SERVER_BUSY = "The server is busy: try again in a minute"
_TOO_MANY_CONNECTIONS = "53300"  # PostgreSQL's SQLSTATE for "sorry, too many clients already"
# psycopg2 gives no SQLSTATE for an error at login, only the server's words (English unless
# the server's lc_messages says otherwise): "sorry, too many clients already", "too many
# connections for role/database ...", "remaining connection slots are reserved ..."
_TOO_MANY_SAID = ("too many clients", "too many connections", "connection slots are reserved")
_UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for "relation ... does not exist"
_INSUFFICIENT_PRIVILEGE = "42501"  # "permission denied for table ..."
# SQLite reports these as OperationalError (PostgreSQL: ProgrammingError), like a lost connection
_SQLITE_SCHEMA = ("no such column", "has no column named")


def error_kind(exc: BaseException) -> str:
    """Which of the kinds above `exc` is (what `describe_error` explains)."""
    from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError  # sqlalchemy is slow to import
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, PoolTimeout):  # every connection of this process's pool stayed in use
        return BUSY
    if isinstance(exc, DBAPIError):
        said = str(exc.orig)
        if getattr(exc.orig, "pgcode", None) == _TOO_MANY_CONNECTIONS or any(s in said for s in _TOO_MANY_SAID):
            return BUSY
        # psycopg2 errors carry a SQLSTATE; sqlite3 says it only in words
        if getattr(exc.orig, "pgcode", None) == _UNDEFINED_TABLE or said.startswith("no such table"):
            return NO_SCHEMA
        if getattr(exc.orig, "pgcode", None) == _INSUFFICIENT_PRIVILEGE:
            return PRIVILEGE
        if isinstance(exc, ProgrammingError) or said.startswith(_SQLITE_SCHEMA):
            return SCHEMA
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            return UNREACHABLE
    if isinstance(exc, (DatabaseUnavailable, ConnectionError)):
        return UNREACHABLE
    if isinstance(exc, SmartlabelError):
        return OURS
    return OTHER


def describe_error(exc: BaseException, database=None) -> str:
    """One line saying what went wrong and what to do next, for any exception.

    `database` (an Engine or a sqlalchemy URL) is named, without its password, when it
    cannot be reached or has no tables.
    """
    if isinstance(exc, SmartlabelError):
        return str(exc)
    kind, first = error_kind(exc), _first_line(exc)
    at = f" at {_shown_url(database)}" if database is not None else ""
    if kind == BUSY:
        return (f"{SERVER_BUSY}: the database{at} has no free connection right now ({first.rstrip('.')}). "
                "If it lasts, see the connection budget in the README")
    if kind == UNREACHABLE:
        return (f"cannot reach the database{at}: {first.rstrip('.')}. "
                "Check DATABASE_URL and that the database server is running.")
    if kind == NO_SCHEMA:
        return f"the database{at} has no smartlabel tables ({first}): run `smartlabel db upgrade`"
    if kind == PRIVILEGE:
        who = f" ({_user(database)})" if database is not None else ""
        return (f"the database role{who} may not do this: {first}. Run it with a DATABASE_URL of a role "
                "that may (the owner's, for `smartlabel db upgrade`, `db roles` and `labellers`)")
    if kind == SCHEMA:
        return f"database error: {first}; is the schema current? Run `smartlabel db upgrade`"
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    """The first line of the error: the driver's own words, without SQLAlchemy's echo of the SQL."""
    from sqlalchemy.exc import DBAPIError

    lines = str(exc.orig if isinstance(exc, DBAPIError) else exc).strip().splitlines()
    return lines[0].strip() if lines else ""


def _user(database) -> str:
    from sqlalchemy.engine import Engine, make_url

    url = database.url if isinstance(database, Engine) else make_url(database)
    return url.username or "?"


def _shown_url(database) -> str:
    from sqlalchemy.engine import Engine

    url = database.url if isinstance(database, Engine) else database
    return url.render_as_string(hide_password=True)
