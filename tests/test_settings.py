"""Settings: parsing, clear errors, and the README's table agreeing with the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from smartlabel import DEFAULT_LABELS
from smartlabel.errors import ConfigError
from smartlabel.settings import Settings, load_settings

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_settings() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| `([^`]*)` \|", section, flags=re.M)
    names = [name for name, _ in rows]
    twice = sorted({n for n in names if names.count(n) > 1})
    assert not twice, f"the README's settings table lists {twice} twice"
    return dict(rows)


def shown_default(value) -> str:
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def test_readme_table_lists_every_setting_with_its_default():
    documented = readme_settings()
    fields = {name.upper(): f.default for name, f in Settings.model_fields.items()}
    assert set(documented) == set(fields), "README settings table and Settings disagree"
    for name, default in fields.items():
        assert documented[name] == shown_default(default), f"README shows a wrong default for {name}"


def test_default_labels_are_the_articles_five(monkeypatch):
    monkeypatch.delenv("LABELS", raising=False)
    assert load_settings(_env_file=None).labels == list(DEFAULT_LABELS)


@pytest.mark.parametrize("raw", ['["Advocacy","Others"]', "Advocacy, Others", "Advocacy,Others,"])
def test_labels_accept_json_or_commas(monkeypatch, raw):
    monkeypatch.setenv("LABELS", raw)
    assert load_settings(_env_file=None).labels == ["Advocacy", "Others"]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"LABELS": "Only"}, "at least two"),
        ({"LABELS": "A,A"}, "twice"),
        ({"LABELS": '["A", '}, "not valid JSON"),
        ({"OVERLAP": "0"}, "OVERLAP"),
        ({"MODEL": "bert"}, "MODEL"),
    ],
)
def test_bad_settings_give_one_clear_error(monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=message):
        load_settings(_env_file=None)
