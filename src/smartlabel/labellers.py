"""The labelling team: names, personal keys and links (`smartlabel labellers`, the page).

- A labeller's **name** is what every label, lease, hand-out and skip records as
  `worker_id`. Names are compared trimmed, with runs of spaces as one, and ignoring case
  (`name_key`): "Alice" and " alice " are one labeller, also when names are typed
  (LABELLER_KEYS=off). The first spelling is the one recorded.
- A **personal link** carries a key: `secrets.token_urlsafe(32)`, 256 random bits. Only
  its SHA-256 is stored. A fast hash is right here (unlike for a password): the key is a
  uniformly random 256-bit secret, so there is no dictionary to try and a stolen hash
  cannot be turned back into a key; a slow hash would only slow every click down.
- Labels imported from a file keep the file's worker ids and get no labeller row: an id
  in a file records who labelled elsewhere, not an account that can open the page.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
import urllib.parse
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from smartlabel.db import utcnow
from smartlabel.errors import LabellerError, LinkNotValidError
from smartlabel.store import labellers as store

KEY_BYTES = 32                                # 256 bits (at least 128 are needed)
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")  # what token_urlsafe(32) gives
MAX_NAME_CHARS = 100
LINK_NOT_VALID = "This link is not valid: ask your admin for your personal link"


def clean_name(name: str | None) -> str:
    """A name as recorded: trimmed, runs of spaces as one."""
    return " ".join((name or "").split())


def name_key(name: str) -> str:
    """What names are compared by: the clean name, Unicode-normalised (NFKC) and case-folded."""
    return unicodedata.normalize("NFKC", clean_name(name)).casefold()


def check_name(name: str | None) -> str:
    """The clean name, or LabellerError saying what is wrong with it."""
    cleaned = clean_name(name)
    if not cleaned:
        raise LabellerError("a labeller needs a name: give one, e.g. `smartlabel labellers add \"Ann Lee\"`")
    if len(cleaned) > MAX_NAME_CHARS:
        raise LabellerError(f"that name is {len(cleaned)} characters long; the limit is {MAX_NAME_CHARS}")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in cleaned):
        raise LabellerError("that name contains control characters; use letters, digits, spaces and punctuation")
    return cleaned


def new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def key_hash(key: str) -> str:
    """SHA-256 (hex) of a key: what the database stores and looks up (see the module docstring)."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def well_formed(key: str | None) -> bool:
    return bool(key) and KEY_PATTERN.fullmatch(key) is not None


# --- the admin's commands -------------------------------------------------------------


@dataclass(frozen=True)
class NewKey:
    name: str
    key: str


def add(engine: Engine, name: str) -> NewKey:
    """A new labeller and their key; LabellerError (nothing written) when the name is taken."""
    name = check_name(name)
    taken = store.find(engine, name_key(name))
    if taken is not None:
        raise _taken(name, taken["name"])
    key = new_key()
    try:
        store.add(engine, name, name_key(name), key_hash(key), utcnow())
    except IntegrityError:  # added by someone else in between
        raise _taken(name, (store.find(engine, name_key(name)) or {"name": name})["name"]) from None
    return NewKey(name, key)


def rotate(engine: Engine, name: str) -> NewKey:
    """A new key for a labeller: the old one stops working at once (their next click is refused)."""
    row = _existing(engine, name)
    key = new_key()
    store.set_key(engine, row["id"], key_hash(key), utcnow())
    return NewKey(row["name"], key)


def set_enabled(engine: Engine, name: str, enabled: bool) -> str:
    """Enable or disable a labeller (disabled: their link and name are refused, their posts freed)."""
    row = _existing(engine, name)
    store.set_enabled(engine, row["id"], row["name"], enabled)
    return row["name"]


def listing(engine: Engine) -> list[dict]:
    return store.listing(engine)


def _existing(engine: Engine, name: str) -> dict:
    row = store.find(engine, name_key(clean_name(name)))
    if row is None:
        raise LabellerError(f"there is no labeller named {clean_name(name)!r}; "
                            "`smartlabel labellers list` shows who there is")
    return row


def _taken(name: str, existing: str) -> LabellerError:
    same = "" if existing == name else f" as {existing!r}"
    return LabellerError(f"a labeller named {name!r} exists already{same} (names are compared ignoring case "
                         f"and spaces); pick another name, or `smartlabel labellers rotate {existing!r}` "
                         "for a new link")


def personal_link(settings, key: str) -> str:
    """The page address with the key (and Voila's token, when one is set): all a labeller needs."""
    if settings.page_url:
        base = settings.page_url
    elif settings.domain:
        base = f"https://{settings.domain}/"
    else:
        from smartlabel.serve import page_url

        base = page_url("127.0.0.1", settings.voila_port)
    params = ([("token", settings.voila_token)] if settings.voila_token else []) + [("key", key)]
    return base + ("&" if "?" in base else "?") + urllib.parse.urlencode(params)


# --- the page -------------------------------------------------------------------------------


def name_for_key(engine: Engine, key: str | None) -> str | None:
    """The enabled labeller this key belongs to, else None (a malformed key never reaches the
    database). No key is ever compared in Python: the database looks the key's SHA-256 up in
    a unique index, and timing that lookup tells an attacker about the hashes of their own
    guesses, nothing about a real key (a near miss of the hash is no near miss of the key)."""
    if not well_formed(key):
        return None
    return store.name_for_key(engine, key_hash(key), utcnow())


def key_guard(engine: Engine, key: str, name: str):
    """A check the queue runs before every step: LinkNotValidError once the key was rotated,
    the labeller disabled (or renamed)."""
    def guard() -> None:
        if name_for_key(engine, key) != name:
            raise LinkNotValidError(LINK_NOT_VALID)
    return guard


def labeller_for_name(engine: Engine, typed: str) -> tuple[str, bool]:
    """(canonical name, enabled) for a typed name (LABELLER_KEYS=off); created if new."""
    name = check_name(typed)
    return store.labeller_for_name(engine, name, name_key(name), utcnow())
