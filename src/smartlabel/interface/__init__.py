"""The labelling page: superintendent's widget fed by our LabelQueue, rendered by Voila.

`voila-interface.ipynb` calls `labelling_page()`; `smartlabel serve` starts Voila on it.
One browser tab is one kernel, so the page keeps that kernel small and never trains:
TensorFlow is never imported, and scikit-learn, SciPy and pandas only as stand-ins while
superintendent is imported.

| module      | what                                                                   |
|-------------|------------------------------------------------------------------------|
| `page`      | the page: who labels (`?key=` personal link, or a typed name), problems |
| `widget`    | the labelling widget (superintendent's, on our queue); imported lazily |
| `stand_ins` | importing superintendent without its training stack                    |
| `render`    | what the page says, as escaped HTML; problems as headline and detail   |
| `page.css`  | the page's look                                                        |
"""

from smartlabel.interface.page import LabellingPage, key_from_query, labelling_page, worker_from_query
from smartlabel.labellers import clean_name
from smartlabel.interface.render import model_line_html, reason_text, render_post_html, status_html

__all__ = ["LabellingPage", "clean_name", "key_from_query", "labelling_page", "model_line_html", "reason_text",
           "render_post_html", "status_html", "worker_from_query"]
