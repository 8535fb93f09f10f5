"""What the labelling page says, as HTML: every value from the database or the labeller is escaped.

Nothing sanitises HTML on the way to the browser (`widgets.HTML` runs `<img onerror=...>`),
so post text, names and error details go through `esc` before they reach a widget.
"""

from __future__ import annotations

import html
import sys
import traceback
from datetime import datetime, timezone
from typing import Any

from smartlabel.errors import (
    BUSY, NO_SCHEMA, OURS, PRIVILEGE, SCHEMA, SERVER_BUSY, UNREACHABLE, ConfigError, describe_error, error_kind,
)

# Posts whose label must not lean on the model: the random sample measures the model, an
# audit is an independent second opinion, a review questions a label the model disputes.
BLIND_REASONS = ("random", "audit", "review")

HEADLINES = {
    BUSY: SERVER_BUSY + ".",
    UNREACHABLE: "The database cannot be reached right now.",
    NO_SCHEMA: "The database has no smartlabel tables yet.",
    SCHEMA: "The database does not fit this version of smartlabel.",
    PRIVILEGE: "The page's database role may not do this.",
    OURS: "The page cannot continue.",
}


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{100 * float(value):.0f}%"


def reason_text(item: dict) -> str:
    """Why the queue handed out this post, in words (HTML-escaped)."""
    reason = item.get("reason")
    first, p1 = item.get("predicted_label"), item.get("confidence")
    second, p2 = item.get("second_label"), item.get("second_confidence")
    if reason == "priority":
        if first is not None and second is not None:
            return f"the model is torn between {esc(first)} ({_pct(p1)}) and {esc(second)} ({_pct(p2)})"
        if first is not None:
            return f"the model is unsure about it ({esc(first)}, {_pct(p1)})"
        return "the model ranks it as useful to label next"
    return {
        "coldstart": "chosen to represent the pool (cold start: too few labels for the model to choose well)",
        "random": "random exploration (the unbiased sample that measures the model)",
        "audit": "a second opinion: someone else labelled this post (agreement check)",
        "review": "a second look: the model or another labeller disagrees with its label",
        "unscored": "not scored yet",
        "skipped": "you skipped it earlier; it is back because nothing else is left",
        "undo": "back after undo",
        "held": "you had it open before the page was reloaded",
    }.get(reason, esc(reason or "next in the queue"))


def render_post_html(item: dict) -> str:
    """The post as escaped HTML: why it was chosen, the model's guess, title, raw body.

    The model's guess is not shown on posts in BLIND_REASONS: their labels must not lean
    on it (the random sample is the unbiased estimate of the model's accuracy).
    """
    why = f"<b>Why this post:</b> {reason_text(item)}"
    if item.get("predicted_label") is not None:
        if item.get("reason") in BLIND_REASONS:
            why += " · <b>Model's guess:</b> <span class='sl-muted'>hidden on this post</span>"
        else:
            why += (f" · <b>Model's guess:</b> {esc(item['predicted_label'])} "
                    f"({_pct(item.get('confidence'))} sure)")
    title = esc(item.get("title")).strip() or "<span class='sl-muted'>(no title)</span>"
    body = esc(item.get("selftext"))
    if not body.strip():
        body = "<span class='sl-muted'>(no text)</span>"
    return (
        f"<div class='sl-post' data-item-id='{int(item['id'])}'>"
        f"<div class='sl-why'>{why}</div>"
        f"<div class='sl-title'>{title}</div>"
        f"<div class='sl-body'>{body}</div>"
        "</div>"
    )


def status_html(counts: dict) -> str:
    return (
        f"<b>{counts['done']:,}</b> of {counts['total']:,} posts labelled"
        f" · <b>{counts['labelled_by_me']:,}</b> by you"
        f" · <b>{counts['left']:,}</b> left"
    )


def model_line_html(run: dict | None, now: datetime | None = None) -> str:
    if not run:
        return ("<b>Model:</b> none yet. Posts come in random order until the orchestrator "
                "has trained one.")
    if run.get("kind") == "coldstart":  # an order of the pool, no model (smartlabel.coldstart)
        return ("<b>Model:</b> none yet. Posts are chosen to represent the pool until there are "
                "enough labels to train one (cold start).")
    finished = run.get("finished_at")
    when = "still training"
    if finished is not None:
        if not isinstance(finished, datetime):
            finished = datetime.fromisoformat(str(finished))
        now = now or datetime.now(timezone.utc).replace(tzinfo=None)
        when = f"trained {finished:%Y-%m-%d %H:%M} UTC ({_ago((now - finished).total_seconds())})"
    kind = f" ({esc(run['model_kind'])})" if run.get("model_kind") else ""
    parts = [f"<b>Model{kind}:</b> {when}"]
    if run.get("n_labels") is not None:
        parts.append(f"{int(run['n_labels']):,} labels")
    if run.get("cv_accuracy") is not None:
        parts.append(f"CV accuracy {_pct(run['cv_accuracy'])}")
    return " · ".join(parts)


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 90:
        return "just now" if s < 10 else f"{s} s ago"
    if s < 90 * 60:
        return f"{s // 60} min ago"
    if s < 36 * 3600:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


# --- problems ----------------------------------------------------------------------------


def describe_problem(exc: BaseException, database=None) -> tuple[str, str]:
    """(headline, detail) for the page: a headline for the kind of problem, and
    smartlabel.errors.describe_error's one line (what to do) as the detail."""
    if isinstance(exc, ConfigError):
        headline = "A setting is wrong."
    else:
        headline = HEADLINES.get(error_kind(exc), "Something went wrong.")
    return headline, describe_error(exc, database)


def problem_html(exc: BaseException, what: str, advice: str, database=None) -> str:
    """The error box: headline, what to do now, and the problem in one line (no traceback)."""
    headline, detail = describe_problem(exc, database)
    return (f"<div class='sl-error'><h2>{esc(headline)}</h2><p>{esc(advice)}</p>"
            f"<div class='sl-error-detail'>While {esc(what)}: {esc(detail)}</div></div>")


def invalid_link_html() -> str:
    """The page for a personal link that is missing, malformed, rotated away or disabled."""
    from smartlabel.labellers import LINK_NOT_VALID

    return (f"<div class='sl-error sl-invalid-link'><h2>{esc(LINK_NOT_VALID)}</h2>"
            "<p>Nothing was saved from this page. Your admin can send you a new link.</p></div>")


def log_exception(where: str) -> None:
    """Full traceback to the kernel's stderr (Voila's log), never to the page."""
    print(f"smartlabel labelling page: error while {where}:", file=sys.stderr)
    traceback.print_exc(file=sys.stderr)
