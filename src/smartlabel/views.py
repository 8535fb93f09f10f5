"""Views for admins in Adminer, one definition per dialect (string aggregation differs)."""

from __future__ import annotations

# An item's agreed label: the label with strictly more votes than any other
# (ties have none). Used by the orchestrator as its training data too.
AGREED_LABELS = """
CREATE VIEW agreed_labels AS
WITH votes AS (
    SELECT item_id, label, COUNT(*) AS n FROM labels GROUP BY item_id, label
)
SELECT v.item_id, v.label AS agreed_label, v.n AS votes
FROM votes v
WHERE NOT EXISTS (
    SELECT 1 FROM votes o
    WHERE o.item_id = v.item_id AND o.label <> v.label AND o.n >= v.n
)
"""

_ITEM_STATUS = """
CREATE VIEW item_status AS
SELECT
    i.id AS item_id,
    i.external_id,
    i.title,
    i.label_count,
    i.done,
    (SELECT {agg} FROM labels l WHERE l.item_id = i.id) AS human_labels,
    a.agreed_label,
    p.predicted_label,
    p.confidence,
    p.priority,
    p.run_id AS prediction_run_id,
    le.worker_id AS leased_to,
    le.expires_at AS lease_expires_at
FROM items i
LEFT JOIN agreed_labels a ON a.item_id = i.id
LEFT JOIN queue_state q ON q.id = 1
LEFT JOIN predictions p ON p.run_id = q.current_run_id AND p.item_id = i.id
LEFT JOIN leases le ON le.item_id = i.id
"""

_LABELLER_STATS = """
CREATE VIEW labeller_stats AS
SELECT
    worker_id,
    COUNT(*) AS labels,
    COUNT(DISTINCT item_id) AS items,
    MIN(created_at) AS first_label_at,
    MAX(created_at) AS last_label_at,
    ROUND(CAST({per_hour} AS NUMERIC), 1) AS labels_per_hour,
    ROUND(CAST(AVG(seconds_spent) AS NUMERIC), 1) AS avg_seconds_per_label
FROM labels
WHERE handout_reason IS NULL OR handout_reason <> 'import'
GROUP BY worker_id
"""

_DIALECT = {
    "postgresql": {
        "agg": "string_agg(l.worker_id || ': ' || l.label, '; ' ORDER BY l.id)",
        "per_hour": "COUNT(*) * 3600.0 / GREATEST(EXTRACT(EPOCH FROM MAX(created_at) - MIN(created_at)), 60)",
    },
    "sqlite": {
        "agg": "group_concat(l.worker_id || ': ' || l.label, '; ')",
        "per_hour": "COUNT(*) * 3600.0 / MAX((julianday(MAX(created_at)) - julianday(MIN(created_at))) * 86400.0, 60)",
    },
}

VIEW_NAMES = ["item_status", "labeller_stats", "agreed_labels"]  # drop order


def create_view_sql(dialect: str) -> list[str]:
    d = _DIALECT["postgresql" if dialect == "postgresql" else "sqlite"]
    return [
        AGREED_LABELS,
        _ITEM_STATUS.format(agg=d["agg"]),
        _LABELLER_STATS.format(per_hour=d["per_hour"]),
    ]


def drop_view_sql() -> list[str]:
    return [f"DROP VIEW IF EXISTS {name}" for name in VIEW_NAMES]
