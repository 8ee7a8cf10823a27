"""Alembic environment: the server passes its open connection in ``config.attributes``."""

from alembic import context

from service.db.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
