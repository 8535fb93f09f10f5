"""Settings: parsing, clear errors, and the README's table agreeing with the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from smartlabel import DEFAULT_LABELS, DEFAULT_PRESET, LABEL_PRESETS
from smartlabel.errors import ConfigError
from smartlabel.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ENV_EXAMPLE = ROOT / ".env.example"


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


def test_default_labels_are_the_reuters_preset(monkeypatch):
    monkeypatch.delenv("LABELS", raising=False)
    assert load_settings(_env_file=None).labels == list(DEFAULT_LABELS) == list(LABEL_PRESETS["reuters"])
    assert DEFAULT_PRESET == "reuters"
    assert LABEL_PRESETS["article"] == (
        "Social Issue Discussion", "Personal Stories", "Advocacy", "Factual Queries/Sharing", "Others",
    )


@pytest.mark.parametrize("raw", ["article", "Article", " ARTICLE ", "reuters"])
def test_labels_accept_a_preset_name(monkeypatch, raw):
    monkeypatch.setenv("LABELS", raw)
    assert load_settings(_env_file=None).labels == list(LABEL_PRESETS[raw.strip().lower()])


def test_a_single_unknown_word_names_the_presets(monkeypatch):
    monkeypatch.setenv("LABELS", "artcle")
    with pytest.raises(ConfigError, match=r"at least two tags, or the name of a preset \(reuters, article\)"):
        load_settings(_env_file=None)


def test_env_example_and_readme_show_the_presets_that_resolve(monkeypatch):
    """.env.example (what `make env` copies into .env) and the README name the presets the code has."""
    lines = [ln[2:] for ln in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines() if ln.startswith("# LABELS=")]
    assert lines[0] == f"LABELS={DEFAULT_PRESET}", "the first LABELS line shows the default"
    shown = {line.split("=", 1)[1] for line in lines}
    assert set(LABEL_PRESETS) <= shown, shown
    for line in lines:  # every line an operator may uncomment is a valid setting
        monkeypatch.setenv("LABELS", line.split("=", 1)[1])
        assert load_settings(_env_file=None).labels
    readme = README.read_text(encoding="utf-8")
    for name, tags in LABEL_PRESETS.items():
        assert f"LABELS={name}" in readme, name
        assert all(tag in readme for tag in tags), name


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
