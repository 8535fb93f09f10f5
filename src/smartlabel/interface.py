"""The labelling page: superintendent's widget fed by our LabelQueue, rendered by Voila.

`voila-interface.ipynb` calls `labelling_page()`; `smartlabel serve` starts Voila on it.
One browser tab is one kernel, so this module keeps that kernel small and never trains:

- The widget is superintendent's `Superintendent` (the article's), subclassed only where
  its loop gets in the way: a skip reaches `queue.skip`, a stale submit shows a notice
  and moves on, an unreachable database shows a message and a Retry button instead of a
  traceback, an empty pool shows "all done" with "Check again".
- Superintendent imports scikit-learn, SciPy and pandas at module level for its own
  training and its own queue, none of which the labelling kernel uses (model=None, our
  queue). `import_superintendent()` gives it stand-ins for exactly those modules while it
  is imported, then takes them out of `sys.modules` again, which keeps about 140 MB and
  1.5 s of imports out of every labeller's kernel. TensorFlow is never imported.
- The labeller's name comes from `?worker=NAME` (Voila hands the page's query string to
  the kernel as the QUERY_STRING environment variable) or from a name box; once typed,
  a small script writes it into the browser's address bar, so a reload keeps it.
- All post text is HTML-escaped before it reaches a widget.
"""

from __future__ import annotations

import html
import importlib.abc
import importlib.machinery
import json
import os
import sys
import threading
import time
import traceback
import types
import urllib.parse
from datetime import datetime, timezone
from typing import Any, Callable

import ipywidgets as widgets
from IPython.display import Javascript, display

from smartlabel.errors import (
    AlreadyLabelledError,
    ConfigError,
    NotHeldError,
    NothingToUndoError,
    SmartlabelError,
    UnknownItemError,
)

# A click (or key) that reaches the kernel sooner than this after a post was shown is the
# second half of a double click meant for the previous post: it is ignored, so it cannot
# label a post nobody has read yet.
MIN_SECONDS_ON_POST = 0.25
MAX_NAME_CHARS = 100
PAGE_TITLE = "smartlabel: labelling"

# --- superintendent without its training stack ---------------------------------------

# Imported by superintendent at module level, used only by its retrain(), its acquisition
# functions and its own DatabaseQueue: nothing the labelling page calls.
_TRAINING_ONLY = ("sklearn", "sklearn.base", "sklearn.model_selection", "scipy", "scipy.stats", "pandas")


class _NotLoaded(types.ModuleType):
    """Stand-in for a module the labelling kernel does not load."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if self.__name__ == "sklearn.base" and name == "BaseEstimator":
            return _PlaceholderEstimator  # superintendent only uses it in type hints
        raise RuntimeError(
            f"{self.__name__}.{name} is not loaded in the labelling page's kernel: "
            "training happens in the orchestrator (smartlabel orchestrate), never here"
        )


class _PlaceholderEstimator:
    pass


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in _TRAINING_ONLY:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _NotLoaded(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def import_superintendent():
    """Import superintendent without scikit-learn, SciPy and pandas; return the class.

    Modules already imported are used as they are. The stand-ins leave `sys.modules`
    afterwards, so anything else in the process still imports the real modules. If
    anything goes wrong, superintendent is imported the ordinary way.
    """
    if "superintendent" in sys.modules:
        return sys.modules["superintendent"].Superintendent
    finder = _StandInFinder()
    sys.meta_path.insert(0, finder)
    try:
        import superintendent
    except Exception:
        _drop_stand_ins()
        for name in [m for m in sys.modules if m == "superintendent" or m.startswith("superintendent.")]:
            del sys.modules[name]
        sys.meta_path.remove(finder)
        import superintendent
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        _drop_stand_ins()
    return superintendent.Superintendent


def _drop_stand_ins() -> None:
    for name in _TRAINING_ONLY:
        if isinstance(sys.modules.get(name), _NotLoaded):
            del sys.modules[name]


# --- what the page says -----------------------------------------------------------------

CSS = """
<style>
.sl-page { max-width: 980px; margin: 0 auto; font-size: 15px; color: #1f2328; }
.sl-header { display: flex; justify-content: space-between; align-items: baseline; gap: 1em;
             border-bottom: 1px solid #e5e7eb; padding: .2em 0 .5em; margin-bottom: .6em; }
.sl-brand { font-weight: 600; font-size: 1.05em; }
.sl-who { color: #555; }
.sl-status, .sl-model { color: #444; font-size: .92em; line-height: 1.5; }
.sl-model { margin-bottom: .3em; }
.sl-post-widget, .sl-post-widget .widget-html-content { width: 100%; max-width: 100%; box-sizing: border-box; }
.sl-post { width: 100%; box-sizing: border-box; padding-right: 3px; }
.sl-why { color: #555; font-size: .9em; margin: .2em 0 .5em; line-height: 1.45; }
.sl-title { font-size: 1.45em; font-weight: 650; line-height: 1.3; margin: 0 0 .5em;
            overflow-wrap: anywhere; white-space: pre-wrap; }
.sl-body { box-sizing: border-box; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 48vh; overflow-y: auto;
           line-height: 1.55; padding: .7em .9em; background: #fafafa; border: 1px solid #e3e3e3;
           border-radius: 6px; }
.sl-muted { color: #888; font-style: italic; }
.sl-tag button { height: 2.6em; font-size: 1em; }
.sl-labeller { padding: 2px 4px; border-radius: 6px; }
.sl-labeller:focus, .sl-labeller:focus-visible { outline: 2px solid #9ec5fe; outline-offset: -1px; }
.sl-key { text-align: center; color: #888; font-size: .8em; line-height: 1.4; }
.sl-keys { color: #666; font-size: .85em; margin-top: .4em; }
.sl-notice { background: #fff6d6; border-left: 4px solid #e0b100; padding: .35em .7em; margin: .3em 0;
             border-radius: 3px; }
.sl-error { background: #fdecea; border-left: 4px solid #c0392b; padding: .8em 1em; border-radius: 4px; }
.sl-error-detail { color: #666; font-size: .85em; margin-top: .4em; overflow-wrap: anywhere; }
.sl-done { background: #eaf7ee; border-left: 4px solid #2e9e55; padding: .8em 1em; border-radius: 4px; }
.sl-ask h2 { margin: .6em 0 .2em; }
kbd { border: 1px solid #ccc; border-bottom-width: 2px; border-radius: 3px; padding: 0 .35em;
      font-size: .9em; background: #fff; }
</style>
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{100 * float(value):.0f}%"


# Posts whose label must not lean on the model: the random sample measures the model, an
# audit is an independent second opinion, a review questions a label the model disputes.
BLIND_REASONS = ("random", "audit", "review")


def reason_text(item: dict) -> str:
    """Why the queue handed out this post, in words (HTML-escaped)."""
    reason = item.get("reason")
    first, p1 = item.get("predicted_label"), item.get("confidence")
    second, p2 = item.get("second_label"), item.get("second_confidence")
    if reason == "priority":
        if first is not None and second is not None:
            return f"the model is torn between {_e(first)} ({_pct(p1)}) and {_e(second)} ({_pct(p2)})"
        if first is not None:
            return f"the model is unsure about it ({_e(first)}, {_pct(p1)})"
        return "the model ranks it as useful to label next"
    return {
        "random": "random exploration (the unbiased sample that measures the model)",
        "audit": "a second opinion: someone else labelled this post (agreement check)",
        "review": "a second look: the model or another labeller disagrees with its label",
        "unscored": "not scored yet",
        "skipped": "you skipped it earlier; it is back because nothing else is left",
        "undo": "back after undo",
        "held": "you had it open before the page was reloaded",
    }.get(reason, _e(reason or "next in the queue"))


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
            why += (f" · <b>Model's guess:</b> {_e(item['predicted_label'])} "
                    f"({_pct(item.get('confidence'))} sure)")
    title = _e(item.get("title")).strip() or "<span class='sl-muted'>(no title)</span>"
    body = _e(item.get("selftext"))
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
    finished = run.get("finished_at")
    when = "still training"
    if finished is not None:
        if not isinstance(finished, datetime):
            finished = datetime.fromisoformat(str(finished))
        now = now or datetime.now(timezone.utc).replace(tzinfo=None)
        when = f"trained {finished:%Y-%m-%d %H:%M} UTC ({_ago((now - finished).total_seconds())})"
    kind = f" ({_e(run['model_kind'])})" if run.get("model_kind") else ""
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


def describe_problem(exc: BaseException) -> tuple[str, str]:
    """(headline, detail) for an error, without a traceback; detail is one line."""
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    detail = first[0] if first else type(exc).__name__
    low = str(exc).lower()
    if ("no such table" in low or ("relation" in low and "does not exist" in low)):
        return ("The database has no smartlabel tables yet.",
                "Ask the admin to run `smartlabel db upgrade` (or import posts), then press Retry.")
    try:
        from sqlalchemy.exc import DBAPIError, OperationalError

        db_error = isinstance(exc, (DBAPIError, OperationalError))
    except Exception:  # pragma: no cover
        db_error = False
    from smartlabel.errors import DatabaseUnavailable

    if db_error or isinstance(exc, (DatabaseUnavailable, ConnectionError)):
        return ("The database cannot be reached right now.", detail)
    if isinstance(exc, SmartlabelError):
        return ("The page cannot continue.", detail)
    return ("Something went wrong.", f"{type(exc).__name__}: {detail}")


def _log_exception(where: str) -> None:
    """Full traceback to the kernel's stderr (Voila's log), never to the page."""
    print(f"smartlabel labelling page: error while {where}:", file=sys.stderr)
    traceback.print_exc(file=sys.stderr)


# --- the widgets ----------------------------------------------------------------------------


def _tag_labeller_class():
    from ipyannotations.generic import ClassLabeller

    class TagLabeller(ClassLabeller):
        """ipyannotations' ClassLabeller with the button order fixed and keys shown.

        "Sort options" would reorder the buttons and so change which number key means
        which tag: it is hidden and does nothing. Keys (while the mouse is over the
        widget): 1..9, 0 for the tags, S skip, U or Backspace undo.
        """

        def __init__(self, options, display_function):
            super().__init__(options=options, allow_freetext=False, display_function=display_function)
            self.sort_button.layout.display = "none"
            keys = [str(i) for i in range(1, 10)] + ["0"]
            for key, btn in zip(keys, self.control_elements.buttons.values()):
                btn.children = (btn.button, widgets.HTML(f"<div class='sl-key'>key {key}</div>"))
                btn.button.tooltip = f"{btn.description} (key {key})"
                btn.add_class("sl-tag")
            self.skip_button.tooltip = "Skip this post (key S)"
            self.undo_button.tooltip = "Undo your last step (key U or Backspace)"
            self.display_widget.layout.width = "100%"
            self.add_class("sl-labeller")  # outlined while the mouse is over it: keys work then

        def _sort_options(self, change=None):
            return None

        def _handle_keystroke(self, event):
            if event.get("type") == "keyup" and event.get("key") in ("s", "S"):
                self.skip()
                return
            if event.get("type") == "keyup" and event.get("key") in ("u", "U"):
                self.undo()
                return
            super()._handle_keystroke(event)

    return TagLabeller


_UNDONE = object()  # sent into the loop after an undo
_AGAIN = object()   # "check again" / "retry"


def labelling_widget_class():
    """Our subclass of superintendent's widget (built lazily: see import_superintendent)."""
    with _CLASS_LOCK:
        if _LABELLING_WIDGET is None:
            _build_labelling_widget_class()
        return _LABELLING_WIDGET


def warm_up() -> None:
    """Import superintendent in the background while the labeller types their name."""
    if _LABELLING_WIDGET is None:
        threading.Thread(target=_quietly(labelling_widget_class), name="smartlabel-warm-up",
                         daemon=True).start()


def _quietly(fn):
    def run():
        try:
            fn()
        except Exception:  # start() will import again and show the problem
            _log_exception("importing superintendent")
    return run


def _build_labelling_widget_class():
    global _LABELLING_WIDGET
    Superintendent = import_superintendent()
    TagLabeller = _tag_labeller_class()

    class LabellingWidget(Superintendent):
        """superintendent's widget on our queue; the kernel never trains (model=None).

        Changes to superintendent's loop, each for a requirement it does not meet:
        Skip calls `queue.skip` (superintendent submits None); a stale submit (the queue
        raises NotHeldError / AlreadyLabelledError / UnknownItemError) shows a notice and
        moves on; a database error shows a message and Retry; an empty pool shows "all
        done" with "Check again"; undo after the last post undoes one step, not two.
        """

        def __init__(self, queue, labels, *, min_seconds_on_post: float = MIN_SECONDS_ON_POST,
                     clock: Callable[[], float] = time.monotonic):
            self._ready = False
            self._state = "loading"
            self._current: int | None = None
            self._shown_at = float("-inf")
            self._clock = clock
            self.min_seconds_on_post = min_seconds_on_post
            self._pending_notice = ""
            self._keep_reason = None
            self._fetched = None
            self.item: dict = {}
            self.counts: dict | None = None
            self.run: dict | None = None
            self.post = widgets.HTML(layout=widgets.Layout(width="100%"))
            self.post.add_class("sl-post-widget")
            labeller = TagLabeller(labels, display_function=self._display_post)
            super().__init__(queue=queue, labelling_widget=labeller, model=None, worker_id=False)
            self.add_class("sl-labelling")
            self.counts_html = widgets.HTML()
            self.counts_html.add_class("sl-status")
            self.top_bar.children[1].children = [self.counts_html]
            self.model_html = widgets.HTML()
            self.model_html.add_class("sl-model")
            self.notice = widgets.HTML()
            self.keys_html = widgets.HTML(
                "<div class='sl-keys'>Keys, with the mouse over the post: "
                + " ".join(f"<kbd>{k}</kbd> {_e(lab)}" for k, lab in
                           zip([str(i) for i in range(1, 10)] + ["0"], labels))
                + " · <kbd>S</kbd> skip · <kbd>U</kbd> or <kbd>Backspace</kbd> undo</div>"
            )
            self.message = widgets.HTML()
            self.retry_button = widgets.Button(description="Retry", icon="refresh", button_style="warning")
            self.retry_button.on_click(lambda _=None: self.retry())
            self.check_button = widgets.Button(description="Check again", icon="refresh",
                                               button_style="success")
            self.check_button.on_click(lambda _=None: self.check_again())
            self.undo_last_button = widgets.Button(description="Undo my last label", icon="undo")
            self.undo_last_button.on_click(lambda _=None: self._undo())
            self._ready = True
            self._begin_annotation()

        # -- superintendent's hooks ------------------------------------------------------

        def _begin_annotation(self):
            if self._ready:  # superintendent calls it from __init__, before our parts exist
                super()._begin_annotation()

        def _annotation_iterator(self):
            while True:
                got = yield from self._attempt(self._fetch, "fetching the next post")
                if got is None:
                    self._render_finished()
                    yield  # "Check again" or an undo
                    continue
                item_id, item = got
                self._show(item_id, item)
                y = yield
                self._current = None
                if y is _UNDONE or y is _AGAIN:
                    continue
                if y is None:  # superintendent's Skip submits None
                    yield from self._attempt(lambda: self.queue.skip(item_id), "skipping", stale_ok=True)
                else:
                    yield from self._attempt(lambda: self.queue.submit(item_id, y), "saving a label",
                                             stale_ok=True)

        def _apply_annotation(self, y):
            if self._state != "item" or self._too_soon():
                return
            self._step(y)

        def _undo(self):
            if self._state not in ("item", "done") or (self._state == "item" and self._too_soon()):
                return
            try:
                if self._state == "item":
                    self.queue.undo()  # put the post on screen back
                self.queue.undo()      # take back the last label (or skip) and show its post
            except NothingToUndoError:
                self._pending_notice = "Nothing to undo yet."
                if self._state == "item":  # the same post comes back: keep why it was chosen
                    self._keep_reason = (self._current, self.item.get("reason"))
            except Exception as exc:
                _log_exception("undoing")
                self._pending_notice = "Undo failed: " + describe_problem(exc)[0]
            self._step(_UNDONE)

        def _render_finished(self):
            self._state = "done"
            self.model_html.value = model_line_html(self.run)
            self._refresh_counts()
            self.progressbar.bar_style = "success"
            who = _e(self.queue.worker_id)
            mine = self.counts["labelled_by_me"] if self.counts else 0
            self.message.value = (
                f"<div class='sl-done'><h2>All done, {who}!</h2>"
                f"<p>There is no post left for you to label right now ({mine:,} labelled by you). "
                "New posts appear after an import, or when a post someone else holds comes back "
                "to the pool.</p></div>"
            )
            buttons = [self.check_button]
            if mine:
                buttons.append(self.undo_last_button)
            self.children = [self.top_bar, self.model_html, self._notice_widget(), self.message,
                             widgets.HBox(buttons)]

        # -- our actions ---------------------------------------------------------------------

        def retry(self):
            if self._state == "error":
                self._step(_AGAIN)

        def check_again(self):
            if self._state == "done":
                self._step(_AGAIN)

        @property
        def current_item_id(self) -> int | None:
            return self._current

        @property
        def state(self) -> str:
            return self._state

        # -- internals -------------------------------------------------------------------------

        def _too_soon(self) -> bool:
            return self._clock() - self._shown_at < self.min_seconds_on_post

        def _step(self, value):
            try:
                self._annotation_loop.send(value)
            except StopIteration:  # pragma: no cover - the loop never ends
                self._render_error(RuntimeError("the labelling loop stopped"), "sending", final=True)
            except Exception as exc:  # pragma: no cover - _attempt catches what the queue raises
                _log_exception("running the labelling loop")
                self._render_error(exc, "running the labelling loop", final=True)

        def _attempt(self, fn, what: str, stale_ok: bool = False):
            """Run fn; on a database error show it with Retry and run fn again when asked."""
            while True:
                try:
                    return fn()
                except Exception as exc:
                    if stale_ok and isinstance(exc, (NotHeldError, AlreadyLabelledError, UnknownItemError)):
                        self._pending_notice = f"That post was not saved: {exc}. Moving on."
                        return None
                    _log_exception(what)
                    self._render_error(exc, what)
                    yield
                    self._state = "loading"

        def _fetch(self):
            # a post popped before a later query failed is kept for the retry, not popped twice
            if self._fetched is None:
                try:
                    self._fetched = self.queue.pop()
                except IndexError:
                    self._fetched = False
            self.counts = self.queue.counts()
            self.run = current_model_run(self.queue.engine)
            got, self._fetched = self._fetched, None
            return got or None

        def _show(self, item_id, item):
            kept, self._keep_reason = self._keep_reason, None
            if kept and kept[0] == item_id:
                item["reason"] = kept[1]
            self._current = item_id
            self.item = item
            self.model_html.value = model_line_html(self.run)
            self._refresh_counts()
            with self._render_hold_message("Loading..."):
                self.labelling_widget.display(item)
            self.children = [self.top_bar, self.model_html, self._notice_widget(), self.labelling_widget,
                             self.keys_html]
            self._state = "item"
            self._shown_at = self._clock()

        def _refresh_counts(self):
            c = self.counts
            if c:
                self.progressbar.value = c["done"] / c["total"] if c["total"] else 0.0
                self.progressbar.bar_style = ""
                self.counts_html.value = status_html(c)

        def _notice_widget(self):
            text = self._pending_notice
            self._pending_notice = ""
            self.notice.value = f"<div class='sl-notice'>{_e(text)}</div>" if text else ""
            return self.notice

        def _display_post(self, item):
            self.post.value = render_post_html(item)
            display(self.post)

        def _render_error(self, exc, what, final: bool = False):
            self._state = "error" if not final else "broken"
            self._current = None
            headline, detail = describe_problem(exc)
            saved = "Every label you submitted before this is saved."
            action = ("Press Retry when it is back." if not final else "Reload the page to continue.")
            self.message.value = (
                f"<div class='sl-error'><h2>{_e(headline)}</h2><p>{saved} {action}</p>"
                f"<div class='sl-error-detail'>While {_e(what)}: {_e(detail)}</div></div>"
            )
            kids = [self.top_bar, self.message]
            if not final:
                kids.append(self.retry_button)
            self.children = kids

    _LABELLING_WIDGET = LabellingWidget


_LABELLING_WIDGET = None
_CLASS_LOCK = threading.Lock()


def current_model_run(engine) -> dict | None:
    """The model run the queue follows (queue_state.current_run_id), or None."""
    from sqlalchemy import text

    with engine.connect() as conn:
        row = conn.execute(text(
            """SELECT r.id, r.finished_at, r.n_labels, r.cv_accuracy, r.model_kind, r.status
               FROM queue_state q JOIN model_runs r ON r.id = q.current_run_id WHERE q.id = 1"""
        )).mappings().first()
    return dict(row) if row else None


def worker_from_query(query_string: str | None) -> str:
    """The `worker` parameter of a URL query string ('' when absent)."""
    values = urllib.parse.parse_qs(query_string or "", keep_blank_values=True).get("worker") or [""]
    return clean_name(values[0])


def clean_name(name: str | None) -> str:
    return " ".join((name or "").split())


class LabellingPage(widgets.VBox):
    """The whole page: name prompt, then the labelling widget (or a clear message)."""

    def __init__(self, settings=None, query_string: str | None = None, *,
                 min_seconds_on_post: float = MIN_SECONDS_ON_POST):
        super().__init__()
        self.add_class("sl-page")
        self.min_seconds_on_post = min_seconds_on_post
        self.settings = settings
        self.worker: str = ""
        self.widget = None
        self.style_html = widgets.HTML(CSS)
        self.header = widgets.HTML()
        self.body = widgets.VBox()
        self.script = widgets.Output(layout=widgets.Layout(height="0px", overflow="hidden"))
        self.children = [self.style_html, self.header, self.body, self.script]
        self._set_header()
        if self.settings is None:
            try:
                from smartlabel.settings import load_settings

                self.settings = load_settings()
            except Exception as exc:
                _log_exception("reading settings")
                self._show_problem(exc, "reading the settings",
                                   "Fix the setting (environment or .env) and restart the page.")
                return
        self._build_name_prompt()
        self.body.children = [self.ask]
        worker = worker_from_query(query_string)
        if worker:
            self.name_box.value = worker  # starts (the observer in _build_name_prompt)
        else:
            warm_up()

    # -- name ------------------------------------------------------------------------

    def _build_name_prompt(self):
        self.name_box = widgets.Text(placeholder="Your name", continuous_update=False,
                                     layout=widgets.Layout(width="18em"))
        self.name_box.add_class("sl-name")
        self.start_button = widgets.Button(description="Start", button_style="primary", icon="play")
        self.name_error = widgets.HTML()
        self.name_box.observe(lambda change: self.start(change["new"]), names="value")  # Enter
        self.start_button.on_click(lambda _=None: self.start(self.name_box.value))
        self.ask = widgets.VBox([
            widgets.HTML("<div class='sl-ask'><h2>Who is labelling?</h2>"
                         "<p>Your name is stored with every label you give. "
                         "Type it and press Enter or Start.</p></div>"),
            widgets.HBox([self.name_box, self.start_button]),
            self.name_error,
        ])

    def start(self, name: str) -> None:
        """Begin labelling as `name` (from the box or ?worker=)."""
        if self.widget is not None:
            return
        name = clean_name(name)
        if not name:
            self.name_error.value = "<p class='sl-notice'>Type your name first.</p>"
            return
        if len(name) > MAX_NAME_CHARS:
            self.name_error.value = (f"<p class='sl-notice'>That name is longer than {MAX_NAME_CHARS} "
                                     "characters; use a shorter one.</p>")
            return
        self.worker = name
        self._set_header()
        self._remember_name(name)
        self.body.children = [widgets.HTML("<p>Loading your first post…</p>")]
        try:
            from smartlabel.queue import LabelQueue

            queue = LabelQueue(self.settings.database_url, name, settings=self.settings)
            self.widget = labelling_widget_class()(queue, list(self.settings.labels),
                                                   min_seconds_on_post=self.min_seconds_on_post)
        except Exception as exc:
            _log_exception("starting the labelling widget")
            self.widget = None
            self._show_problem(exc, "starting", "Fix the problem, then reload the page.")
            return
        self.body.children = [self.widget]

    def _remember_name(self, name: str) -> None:
        """Put ?worker=NAME into the address bar (no reload), so a reload keeps the name."""
        value = json.dumps(name).replace("<", "\\u003c").replace(">", "\\u003e")
        title = json.dumps(f"{PAGE_TITLE} ({name})").replace("<", "\\u003c").replace(">", "\\u003e")
        self.script.clear_output()
        with self.script:
            display(Javascript(
                "(function () { try { var u = new URL(window.location.href);"
                f" u.searchParams.set('worker', {value});"
                " window.history.replaceState(window.history.state, '', u.toString());"
                f" document.title = {title}; }} catch (e) {{ console.warn(e); }} }})();"
            ))

    # -- frame -------------------------------------------------------------------------

    def _set_header(self):
        who = (f"<span class='sl-who'>Labelling as <b class='sl-worker'>{_e(self.worker)}</b></span>"
               if self.worker else "")
        self.header.value = f"<div class='sl-header'><span class='sl-brand'>smartlabel</span>{who}</div>"

    def _show_problem(self, exc, what, action):
        headline, detail = describe_problem(exc)
        if isinstance(exc, ConfigError):
            headline = "A setting is wrong."
        self.body.children = [widgets.HTML(
            f"<div class='sl-error'><h2>{_e(headline)}</h2><p>{_e(action)}</p>"
            f"<div class='sl-error-detail'>While {_e(what)}: {_e(detail)}</div></div>"
        )]


def labelling_page(settings=None, query_string: str | None = None) -> widgets.Widget:
    """The widget `voila-interface.ipynb` displays. Never raises: problems show on the page.

    `query_string` defaults to the QUERY_STRING environment variable Voila sets in the
    kernel from the page's URL.
    """
    if query_string is None:
        query_string = os.environ.get("QUERY_STRING", "")
    try:
        return LabellingPage(settings, query_string)
    except Exception as exc:  # pragma: no cover - LabellingPage catches what it can foresee
        _log_exception("building the page")
        headline, detail = describe_problem(exc)
        return widgets.HTML(f"{CSS}<div class='sl-error'><h2>{_e(headline)}</h2>"
                            f"<div class='sl-error-detail'>{_e(detail)}</div></div>")
