"""`smartlabel db roles`: create or update the three least-privilege login roles (PostgreSQL).

Run as the database owner (or any role that may create roles), after `smartlabel db
upgrade`; docker compose's one-shot `init` service runs both. The passwords come from the
environment (or `.env`), one variable per role; they are never settings the page or the
orchestrator could see. What each role may do: `smartlabel.store.roles`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import Engine

from smartlabel.db import is_postgres
from smartlabel.errors import ConfigError
from smartlabel.store import roles as store

MIN_PASSWORD_CHARS = 16
PASSWORD_VARIABLES = {store.LABELLER: "LABELLER_DB_PASSWORD", store.ORCHESTRATOR: "ORCHESTRATOR_DB_PASSWORD",
                      store.READER: "READER_DB_PASSWORD"}
PURPOSE = {store.LABELLER: "the labelling page (voila)", store.ORCHESTRATOR: "the orchestrator and autolabel",
           store.READER: "the dashboard, export and Adminer (read-only)"}


class RolePasswords(BaseSettings):
    """The three passwords, from the environment or `.env` (empty counts as missing)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      case_sensitive=False, env_ignore_empty=True)

    labeller_db_password: str = ""
    orchestrator_db_password: str = ""
    reader_db_password: str = ""

    def by_role(self) -> dict[str, str]:
        return {role: getattr(self, var.lower()) for role, var in PASSWORD_VARIABLES.items()}


@dataclass(frozen=True)
class RolesResult:
    database: str
    owner: str
    created: list[str]

    def summary(self) -> str:
        lines = [f"roles ready in database {self.database} (granted by {self.owner}):"]
        lines += [f"  {role:25s} {'created' if role in self.created else 'updated'}  {PURPOSE[role]}"
                  for role in store.ROLES]
        return "\n".join(lines)


def checked_passwords(passwords: dict[str, str]) -> dict[str, str]:
    """The passwords, or one ConfigError naming every missing or short variable."""
    missing = [PASSWORD_VARIABLES[r] for r in store.ROLES if not passwords.get(r)]
    if missing:
        raise ConfigError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: `make env` writes "
                          "them to .env (or set them in the environment); nothing was changed")
    short = [PASSWORD_VARIABLES[r] for r in store.ROLES if len(passwords[r]) < MIN_PASSWORD_CHARS]
    if short:
        raise ConfigError(f"{', '.join(short)}: use at least {MIN_PASSWORD_CHARS} characters (`make env` writes 43 "
                          "random letters and digits); nothing was changed")
    return passwords


def create_roles(engine: Engine, passwords: dict[str, str]) -> RolesResult:
    """Create or update the roles and their grants in one transaction (all or nothing)."""
    if not is_postgres(engine):
        raise ConfigError("roles are a PostgreSQL feature; SQLite has one user (nothing to do)")
    passwords = checked_passwords(passwords)
    from psycopg2.extensions import encrypt_password

    created = []
    with engine.begin() as conn:
        me = store.whoami(conn)
        if me["user"] in store.ROLES or not me["may_create_roles"]:
            raise ConfigError(f"{me['user']} may not create roles: run `smartlabel db roles` with the owner's "
                              "DATABASE_URL (POSTGRES_USER in docker compose); nothing was changed")
        raw = conn.connection.dbapi_connection
        for role in store.ROLES:
            verifier = encrypt_password(passwords[role], role, raw, "scram-sha-256")
            if store.ensure_role(conn, role, verifier):
                created.append(role)
        store.close_the_schema(conn, me["schema"])
        for role in store.ROLES:
            store.grant(conn, role, me["schema"], me["database"])
    return RolesResult(me["database"], me["user"], created)
