"""Alembic environment: the connection is handed in by smartlabel.migrate."""

from alembic import context

from smartlabel.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when alembic is run by hand
    from smartlabel.db import make_engine

    connection = make_engine(context.config.get_main_option("sqlalchemy.url") or None).connect()

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
