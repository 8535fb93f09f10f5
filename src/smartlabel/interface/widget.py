"""The labelling widget: superintendent's `Superintendent` on our queue (the kernel never trains).

Importing this module imports superintendent (through `stand_ins`, without scikit-learn,
SciPy and pandas), which takes a while: the page imports it lazily, in a warm-up thread
while the labeller types their name.

Changes to superintendent's loop, each for a requirement it does not meet: Skip calls
`queue.skip` (superintendent submits None); a stale submit (the queue raises
NotHeldError / AlreadyLabelledError / UnknownItemError) shows a notice and moves on; a
database error shows a message and Retry; an empty pool shows "all done" with "Check
again"; undo after the last post undoes one step, not two. What the widget shows is one
function of its state (`_layout`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable

import ipywidgets as widgets
from ipyannotations.generic import ClassLabeller
from IPython.display import display

from smartlabel.errors import (
    BUSY, AlreadyLabelledError, LinkNotValidError, NotHeldError, NothingToUndoError, UnknownItemError, error_kind,
)
from smartlabel.interface.render import (
    describe_problem, esc, invalid_link_html, log_exception, model_line_html, problem_html, render_post_html,
    status_html,
)
from smartlabel.interface.renewal import LeaseRenewer
from smartlabel.interface.stand_ins import import_superintendent
from smartlabel.store import runs

Superintendent = import_superintendent()

KEYS = [str(i) for i in range(1, 10)] + ["0"]  # the number key of each tag, in button order
STALE = (NotHeldError, AlreadyLabelledError, UnknownItemError)
_UNDONE = object()  # sent into the loop after an undo
_AGAIN = object()   # "check again" / "retry"
SECOND_OPINION_NOTICE = ("Saved as a second opinion: someone else labelled that post while it was away from you, "
                         "and the first label decides.")


class TagLabeller(ClassLabeller):
    """ipyannotations' ClassLabeller with the button order fixed and keys shown.

    "Sort options" would reorder the buttons and so change which number key means
    which tag: it is hidden and does nothing. Keys (while the mouse is over the
    widget): 1..9, 0 for the tags, S skip, U or Backspace undo.
    """

    def __init__(self, options, display_function, update_function=None):
        super().__init__(options=options, allow_freetext=False, display_function=display_function)
        self.update_function = update_function
        self._displayed = False
        self.sort_button.layout.display = "none"
        for key, btn in zip(KEYS, self.control_elements.buttons.values()):
            btn.children = (btn.button, widgets.HTML(f"<div class='sl-key'>key {key}</div>"))
            btn.button.tooltip = f"{btn.description} (key {key})"
            btn.add_class("sl-tag")
        self.skip_button.tooltip = "Skip this post (key S)"
        self.undo_button.tooltip = "Undo your last step (key U or Backspace)"
        self.display_widget.layout.width = "100%"
        self.add_class("sl-labeller")  # outlined while the mouse is over it: keys work then

    def _sort_options(self, change=None):
        return None

    def display(self, item):
        """Show `item`. The first time as ipyannotations does (its display function, into the
        Output widget); from then on, with `update_function`, only the widget already shown
        there changes its value: one widget message per post instead of the Output cleared and
        filled again (four messages, and the browser builds a new view of the post each time).
        After this widget was off the page (`redisplay`), the browser has dropped what the
        Output showed, so it is filled again."""
        if self._displayed and self.update_function is not None:
            self.update_function(item)
            self.clear()
            return
        super().display(item)
        self._displayed = True

    def redisplay(self) -> None:
        """The next post goes into the Output afresh (this widget was taken off the page)."""
        self._displayed = False

    def _handle_keystroke(self, event):
        if event.get("type") == "keyup" and event.get("key") in ("s", "S"):
            self.skip()
            return
        if event.get("type") == "keyup" and event.get("key") in ("u", "U"):
            self.undo()
            return
        super()._handle_keystroke(event)


class LabellingWidget(Superintendent):
    """superintendent's widget on our queue; the kernel never trains (model=None)."""

    def __init__(self, queue, labels, *, min_seconds_on_post: float, clock: Callable[[], float] = time.monotonic):
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
        # the lease on the post on screen is renewed every LEASE_SECONDS / 3
        self.renewer = LeaseRenewer(queue.renew, max(1.0, float(queue.lease_seconds) / 3))
        self.post = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.post.add_class("sl-post-widget")
        super().__init__(queue=queue, labelling_widget=TagLabeller(labels, display_function=self._display_post,
                                                                   update_function=self._update_post),
                         model=None, worker_id=False)
        self.add_class("sl-labelling")
        self.counts_html = widgets.HTML()
        self.counts_html.add_class("sl-status")
        self.top_bar.children[1].children = [self.counts_html]
        self.model_html = widgets.HTML()
        self.model_html.add_class("sl-model")
        self.notice = widgets.HTML()
        self.keys_html = widgets.HTML(
            "<div class='sl-keys'>Keys, with the mouse over the post: "
            + " ".join(f"<kbd>{k}</kbd> {esc(lab)}" for k, lab in zip(KEYS, labels))
            + " · <kbd>S</kbd> skip · <kbd>U</kbd> or <kbd>Backspace</kbd> undo</div>"
        )
        self._hold_messages: dict[str, widgets.HTML] = {}
        self.loading_html = widgets.HTML("<p>Loading…</p>")
        self.message = widgets.HTML()
        self.retry_button = widgets.Button(description="Retry", icon="refresh", button_style="warning")
        self.retry_button.on_click(lambda _=None: self.retry())
        self.check_button = widgets.Button(description="Check again", icon="refresh", button_style="success")
        self.check_button.on_click(lambda _=None: self.check_again())
        self.undo_last_button = widgets.Button(description="Undo my last label", icon="undo")
        self.undo_last_button.on_click(lambda _=None: self._undo())
        self._ready = True
        self._begin_annotation()

    # -- what it shows -----------------------------------------------------------------

    def _layout(self) -> list:
        """The widget's children in its current state."""
        if self._state == "item":
            return [self.top_bar, self.model_html, self.notice, self.labelling_widget, self.keys_html]
        if self._state == "done":
            buttons = [self.check_button]
            if self.counts["labelled_by_me"]:
                buttons.append(self.undo_last_button)
            return [self.top_bar, self.model_html, self.notice, self.message, widgets.HBox(buttons)]
        if self._state == "error":
            return [self.top_bar, self.message, self.retry_button]
        if self._state == "broken":
            return [self.top_bar, self.message]
        return [self.top_bar, self.loading_html]  # loading

    def _enter(self, state: str) -> None:
        """Switch to `state` (loading, item, done, error, broken) and lay the widget out for it;
        a notice waiting for the next screen shows on an item or the done screen."""
        if state != "item":  # the labelling widget leaves the page: its Output is refilled on return
            self.labelling_widget.redisplay()
        self._state = state
        if state in ("item", "done"):
            text, self._pending_notice = self._pending_notice, ""
            self.notice.value = f"<div class='sl-notice'>{esc(text)}</div>" if text else ""
        self.children = self._layout()

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
            self.renewer.stop()
            if y is _UNDONE or y is _AGAIN:
                continue
            if y is None:  # superintendent's Skip submits None
                yield from self._attempt(lambda: self.queue.skip(item_id), "skipping", stale_ok=True)
            else:  # a failed submit is sent again on Retry: the click is kept
                second = yield from self._attempt(lambda: self.queue.submit(item_id, y), "saving a label",
                                                  stale_ok=True)
                if second:
                    self._pending_notice = SECOND_OPINION_NOTICE

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
        except LinkNotValidError:
            self._render_invalid_link()
            return
        except NothingToUndoError:
            self._pending_notice = "Nothing to undo yet."
            if self._state == "item":  # the same post comes back: keep why it was chosen
                self._keep_reason = (self._current, self.item.get("reason"))
        except Exception as exc:
            log_exception("undoing")
            self._pending_notice = "Undo failed: " + describe_problem(exc, self.queue.engine)[0]
        self._step(_UNDONE)

    @contextmanager
    def _render_hold_message(self, message="Rendering..."):
        """superintendent's "Loading..." with a spinner while a post that was slow last time is
        shown; its message widget is made once, not once per post (superintendent makes a new
        one each time: three widgets opened in the browser per click, never closed)."""
        timer = self.timers[message]
        widget = self._hold_messages.get(message)
        if widget is None:
            widget = self._hold_messages[message] = widgets.HTML(
                value=f'<p><b>{esc(message)}</b><i class="fa fa-spinner fa-spin" aria-hidden="true"></i>',
                layout=widgets.Layout(padding="0 10%"))
        if timer.last > 0.5:
            self.top_bar.children[0].children = [self.progressbar, widget]
        try:
            with timer:
                yield
        finally:
            self.top_bar.children[0].children = [self.progressbar]

    def _render_finished(self):
        self.model_html.value = model_line_html(self.run)
        self._refresh_counts()
        self.progressbar.bar_style = "success"
        mine = self.counts["labelled_by_me"]
        self.message.value = (
            f"<div class='sl-done'><h2>All done, {esc(self.queue.worker_id)}!</h2>"
            f"<p>There is no post left for you to label right now ({mine:,} labelled by you). "
            "New posts appear after an import, or when a post someone else holds comes back "
            "to the pool.</p></div>"
        )
        self._enter("done")

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
            log_exception("running the labelling loop")
            self._render_error(exc, "running the labelling loop", final=True)

    def _attempt(self, fn, what: str, stale_ok: bool = False):
        """Run fn; on a database error show it with Retry and run fn again when asked."""
        while True:
            try:
                return fn()
            except LinkNotValidError:  # the key was rotated or disabled: this page is done
                self._render_invalid_link()
                yield
                continue
            except Exception as exc:
                if stale_ok and isinstance(exc, STALE):
                    self._pending_notice = f"That post was not saved: {exc}. Moving on."
                    return None
                log_exception(what)
                self._render_error(exc, what)
                yield
                self._enter("loading")

    def _fetch(self):
        # a post popped before a later query failed is kept for the retry, not popped twice
        if self._fetched is None:
            try:
                self._fetched = self.queue.pop()
            except IndexError:
                self._fetched = False
        self.counts = self.queue.counts()
        self.run = runs.current(self.queue.engine)
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
        self._enter("item")
        self._shown_at = self._clock()
        self.renewer.track(item_id)

    def _refresh_counts(self):
        c = self.counts
        self.progressbar.value = c["done"] / c["total"] if c["total"] else 0.0
        self.progressbar.bar_style = ""
        self.counts_html.value = status_html(c)

    def _display_post(self, item):
        self._update_post(item)
        display(self.post)

    def _update_post(self, item):
        self.post.value = render_post_html(item)

    def _render_invalid_link(self):
        self._current = None
        self.renewer.close()
        self.message.value = invalid_link_html()
        self._enter("broken")

    def _render_error(self, exc, what, final: bool = False):
        self._current = None
        self.renewer.stop()
        if final:
            advice = "Every label you submitted before this is saved. Reload the page to continue."
        elif error_kind(exc) == BUSY:
            advice = "Nothing is lost: press Retry in a minute and your last click is sent again."
        else:
            advice = "Every label you submitted before this is saved. Press Retry when it is back."
        self.message.value = problem_html(exc, what, advice, self.queue.engine)
        self._enter("broken" if final else "error")
