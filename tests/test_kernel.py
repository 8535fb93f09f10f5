"""A labeller's kernel as Voila starts it: the kernelspec `smartlabel serve` puts first on
JUPYTER_PATH, the notebook's own cells, a click sent as the browser sends it.

Each test starts a real ipykernel (jupyter_client, as Voila does) with the environment
`smartlabel serve` gives its kernels, runs voila-interface.ipynb's cells in it, and looks
inside: what is imported (the kernel's memory) and which messages a click sends back (what
the browser has to redo per post).
"""

from __future__ import annotations

import json
import os
import queue as queue_module
import time
from pathlib import Path

import pytest

from smartlabel import serve
from smartlabel.interface.page import MIN_SECONDS_ON_POST
from smartlabel.settings import load_settings

from helpers import seed_items

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "voila-interface.ipynb"
# never in a labeller's kernel: the training stack, superintendent's own queue (sqlmodel and
# SQLAlchemy's ORM), NumPy, and ipykernel's debugger (debugpy / pydevd)
NOT_IN_KERNEL = ("tensorflow", "keras", "torch", "sklearn", "scipy", "pandas", "numpy", "sqlmodel",
                 "sqlalchemy.orm", "superintendent.db_queue", "superintendent.acquisition_functions",
                 "debugpy", "pydevd")


class Kernel:
    """A real ipykernel started from the kernelspec Voila would find, with serve's environment."""

    def __init__(self, database_url: str, query_string: str):
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        env = serve.kernel_environment(load_settings(database_url=database_url, labels="article"))
        env.update({"DATABASE_URL": database_url, "LABELS": "article", "QUERY_STRING": query_string})
        # the kernelspec is looked up as Voila looks it up: in the server's JUPYTER_PATH
        specs = KernelSpecManager()
        specs.kernel_dirs = [str(Path(p) / "kernels") for p in env["JUPYTER_PATH"].split(os.pathsep)] + specs.kernel_dirs
        self.spec = specs.get_kernel_spec("python3")
        self.km = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
        self.km.start_kernel(env=env, cwd=str(ROOT))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(self, code: str) -> list[dict]:
        """Run `code`; every iopub message it caused (AssertionError on an error)."""
        msgs: list[dict] = []
        reply = self.kc.execute_interactive(code, timeout=120, output_hook=msgs.append)
        errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
        assert reply["content"]["status"] == "ok" and not errors, errors or reply["content"]
        return msgs

    def value(self, expression: str):
        out = self.run(f"import json as _j; print(_j.dumps({expression}))")
        text = "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream")
        return json.loads(text.strip().splitlines()[-1])

    def click(self, model_id: str, timeout: float = 60) -> list[dict]:
        """Press a button as the browser does (a comm message); the iopub messages until idle again."""
        msg = self.kc.session.msg("comm_msg", {"comm_id": model_id,
                                                "data": {"method": "custom", "content": {"event": "click"}}})
        self.kc.shell_channel.send(msg)
        got = []
        while True:
            try:
                m = self.kc.get_iopub_msg(timeout=timeout)
            except queue_module.Empty:
                raise AssertionError(f"no idle status after the click; got {[x['msg_type'] for x in got]}")
            if m["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                continue
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                return got
            if m["msg_type"] != "status":
                got.append(m)

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(sqlite_url):
    seed_items(sqlite_url, 6)
    k = Kernel(sqlite_url, "worker=ann")
    try:
        yield k
    finally:
        k.close()


def run_notebook(kernel: Kernel) -> None:
    """voila-interface.ipynb's cells, as Voila runs them; the page it shows is `page` afterwards."""
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        if cell["cell_type"] == "code":
            kernel.run("".join(cell["source"]))
    kernel.run("page = _")


def test_page_kernel_imports_neither_training_stack_nor_numpy_nor_debugger(kernel):
    import psutil

    assert kernel.spec.argv[:3] == ["python", "-m", "smartlabel.kernel"]
    assert serve.is_kernel_command(psutil.Process(kernel.km.provisioner.process.pid).cmdline())  # benches count it
    run_notebook(kernel)
    kernel.run("import time; time.sleep(0.5)")  # the warm-up thread, if any, has finished
    assert kernel.value("__import__('smartlabel.interface').interface.labelling_page.__module__") \
        == "smartlabel.interface.page"
    loaded = kernel.value(f"[m for m in {list(NOT_IN_KERNEL)!r} if __import__('sys').modules.get(m) is not None]")
    assert loaded == []
    # the page is superintendent's widget, labelling
    shown = kernel.value("[page.widget.state, type(page.widget).__mro__[1].__module__]")
    assert shown == ["item", "superintendent"]
    # what was stood in while superintendent was imported is the real thing when asked for later
    assert kernel.value("(lambda sf: [round(float(sf.entropy.__wrapped__(__import__('numpy').array([[0.5, 0.5]]))[0]), 4),"
                        " __import__('superintendent').acquisition_functions is sf])"
                        "(__import__('superintendent.acquisition_functions', fromlist=['x']))") == [-0.6931, True]


def test_a_click_updates_the_post_in_place(kernel, sqlite_url, engine_for):
    run_notebook(kernel)
    ids = kernel.value("(lambda w: [w.current_item_id, "
                       "w.labelling_widget.control_elements.buttons['Advocacy'].button.model_id, w.post.model_id])"
                       "(page.widget)")
    first, button, post = ids
    for _ in range(3):
        time.sleep(2 * MIN_SECONDS_ON_POST)  # a click sooner is taken for a double click and ignored
        msgs = kernel.click(button)
        kinds = [m["msg_type"] for m in msgs]
        # no Output cleared and filled again (the browser keeps its view of the post), and no
        # widget opened per click (each would stay in the kernel and the browser for good)
        assert "clear_output" not in kinds and "display_data" not in kinds and "comm_open" not in kinds, kinds
        updates = [m["content"] for m in msgs if m["msg_type"] == "comm_msg"
                   and m["content"]["data"].get("method") == "update"]
        changed = {u["comm_id"] for u in updates if "value" in u["data"]["state"]}
        assert post in changed and len(updates) <= 4, updates  # the post, counts, progress, notice at most
    assert kernel.value("page.widget.current_item_id") not in (None, first)
    with engine_for(sqlite_url).connect() as conn:
        stored = conn.exec_driver_sql("SELECT worker_id, label FROM labels").all()
    assert [tuple(r) for r in stored] == [("ann", "Advocacy")] * 3


def test_stand_ins_serve_only_the_importing_thread_and_say_what_is_missing():
    import threading

    from smartlabel.interface import stand_ins

    finder = stand_ins._StandInFinder()  # made by the thread that imports superintendent
    other = {}
    t = threading.Thread(target=lambda: other.update(spec=finder.find_spec("numpy")))
    t.start()
    t.join()
    assert other["spec"] is None  # another thread importing NumPy meanwhile gets the real one
    assert finder.find_spec("numpy") is not None and finder.find_spec("json") is None
    np = stand_ins._NotLoaded("numpy")
    assert np.inf == float("inf")
    with pytest.raises(RuntimeError, match="numpy.mean is not loaded in the labelling page's kernel"):
        np.mean
    queue_class = stand_ins._NotLoaded("superintendent.db_queue").DatabaseQueue
    with pytest.raises(RuntimeError, match="pass a queue"):
        queue_class(connection_string="sqlite://")
