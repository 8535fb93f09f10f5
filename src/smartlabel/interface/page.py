"""The page around the labelling widget: who is labelling, and problems shown in place.

Who is labelling (Voila hands the page's query string to the kernel as the QUERY_STRING
environment variable):
- a personal link's `?key=...` (`smartlabel labellers add NAME`): the page shows
  "Labelling as NAME" without asking, and checks the key again before every step, so a
  rotated or disabled key stops an open page at its next click. With LABELLER_KEYS=required
  nothing else is accepted: a missing or bad key gets the "link not valid" page, with
  nothing handed out and nothing written, and `?worker=` is ignored;
- with LABELLER_KEYS=off, `?worker=NAME` or the name box; once typed, a small script
  writes the name into the browser's address bar, so a reload keeps it. Either way the
  name is the labeller's canonical one ("alice" is Alice if Alice was there first).

The widget module imports superintendent, which takes a while: it is imported in a
warm-up thread while the labeller types their name, and `start` imports it again (at
once if the warm-up finished, or waiting for it).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import urllib.parse
from importlib.resources import files

import ipywidgets as widgets
from IPython.display import Javascript, display

from smartlabel.interface.render import esc, invalid_link_html, log_exception, problem_html
from smartlabel.labellers import MAX_NAME_CHARS, clean_name

# A click (or key) that reaches the kernel sooner than this after a post was shown is the
# second half of a double click meant for the previous post: it is ignored, so it cannot
# label a post nobody has read yet.
MIN_SECONDS_ON_POST = 0.25
PAGE_TITLE = "smartlabel: labelling"
WIDGET_MODULE = "smartlabel.interface.widget"
CSS = f"<style>\n{files(__package__).joinpath('page.css').read_text(encoding='utf-8')}</style>"


def warm_up() -> None:
    """Import the widget module (and superintendent) in the background."""
    if WIDGET_MODULE not in sys.modules:
        threading.Thread(target=_import_widget_module, name="smartlabel-warm-up", daemon=True).start()


def _import_widget_module() -> None:
    try:
        importlib.import_module(WIDGET_MODULE)
    except Exception:  # start() imports it again and shows the problem
        log_exception("importing superintendent")


def _parameter(query_string: str | None, name: str) -> str:
    values = urllib.parse.parse_qs(query_string or "", keep_blank_values=True).get(name) or [""]
    return values[0]


def worker_from_query(query_string: str | None) -> str:
    """The `worker` parameter of a URL query string ('' when absent)."""
    return clean_name(_parameter(query_string, "worker"))


def key_from_query(query_string: str | None) -> str:
    """The `key` parameter of a URL query string ('' when absent)."""
    return _parameter(query_string, "key").strip()


class LabellingPage(widgets.VBox):
    """The whole page: who labels (personal link, or the name prompt), then the labelling widget
    (or a clear message: a link that is not valid, a problem with Retry)."""

    def __init__(self, settings=None, query_string: str | None = None, *,
                 min_seconds_on_post: float = MIN_SECONDS_ON_POST):
        super().__init__()
        self.add_class("sl-page")
        self.min_seconds_on_post = min_seconds_on_post
        self.settings = settings
        self.worker: str = ""
        self.widget = None
        self._engine = None
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
                log_exception("reading settings")
                self._show_problem(exc, "reading the settings",
                                   "Fix the setting (environment or .env) and restart the page.")
                return
        key = key_from_query(query_string)
        if key or self.settings.labeller_keys == "required":
            self._start_with_key(key)
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
        """Begin labelling as the typed `name` (from the box or ?worker=; LABELLER_KEYS=off)."""
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
        try:
            from smartlabel import labellers

            canonical, enabled = labellers.labeller_for_name(self._database(), name)
        except Exception as exc:
            log_exception("looking the name up")
            self._show_problem(exc, "looking your name up", "Press Retry when it is back.",
                               retry=lambda: self.start(name))
            return
        if not enabled:
            self.name_error.value = (f"<p class='sl-notice'>{esc(canonical)} may not label now: "
                                     "ask your admin.</p>")
            return
        self._remember_name(canonical)
        self._begin(canonical)

    def _start_with_key(self, key: str) -> None:
        """Begin labelling as the owner of the personal link's key, or show that it is not valid."""
        try:
            from smartlabel import labellers

            engine = self._database()
            name = labellers.name_for_key(engine, key)
        except Exception as exc:
            log_exception("checking the personal link")
            self._show_problem(exc, "checking your personal link", "Press Retry when it is back.",
                               retry=lambda: self._start_with_key(key))
            return
        if name is None:
            self.body.children = [widgets.HTML(invalid_link_html())]
            return
        self._set_title(name)
        self._begin(name, guard=labellers.key_guard(engine, key, name))

    def _begin(self, name: str, guard=None) -> None:
        self.worker = name
        self._set_header()
        self.body.children = [widgets.HTML("<p>Loading your first post…</p>")]
        try:
            from smartlabel.interface.widget import LabellingWidget
            from smartlabel.queue import LabelQueue

            queue = LabelQueue(self._database(), name, settings=self.settings, guard=guard)
            self.widget = LabellingWidget(queue, list(self.settings.labels),
                                          min_seconds_on_post=self.min_seconds_on_post)
        except Exception as exc:
            log_exception("starting the labelling widget")
            self._show_problem(exc, "starting", "Fix the problem, then reload the page.")
            return
        self.body.children = [self.widget]

    def _database(self):
        if self._engine is None:
            from smartlabel.db import make_engine

            # one connection per kernel (the connection budget): steps wait for it, in turn
            self._engine = make_engine(self.settings.database_url, connections=1)
        return self._engine

    def _remember_name(self, name: str) -> None:
        """Put ?worker=NAME into the address bar (no reload), so a reload keeps the name."""
        self._script(f" u.searchParams.set('worker', {_js(name)});"
                     " window.history.replaceState(window.history.state, '', u.toString());", name)

    def _set_title(self, name: str) -> None:
        self._script("", name)

    def _script(self, change_url: str, name: str) -> None:
        title = _js(f"{PAGE_TITLE} ({name})")
        self.script.clear_output()
        with self.script:
            display(Javascript(
                "(function () { try { var u = new URL(window.location.href);"
                f"{change_url} document.title = {title}; }} catch (e) {{ console.warn(e); }} }})();"
            ))

    # -- frame -------------------------------------------------------------------------

    def _set_header(self):
        who = (f"<span class='sl-who'>Labelling as <b class='sl-worker'>{esc(self.worker)}</b></span>"
               if self.worker else "")
        self.header.value = f"<div class='sl-header'><span class='sl-brand'>smartlabel</span>{who}</div>"

    def _show_problem(self, exc, what, advice, retry=None):
        """The problem in place of the page; with `retry`, a Retry button that runs it."""
        children = [widgets.HTML(problem_html(exc, what, advice, self._engine))]
        if retry is not None:
            button = widgets.Button(description="Retry", icon="refresh", button_style="warning")
            button.on_click(lambda _=None: retry())
            children.append(button)
        self.body.children = children


def _js(value: str) -> str:
    """A JavaScript string literal that cannot close the script it sits in."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


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
        log_exception("building the page")
        return widgets.HTML(CSS + problem_html(exc, "building the page", "Reload the page to continue."))
