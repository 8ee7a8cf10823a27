"""runner names: a runner registers under a name, and registering again under the same name and
credential takes its row back instead of adding one per restart

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runners") as batch:
        batch.add_column(sa.Column("name", sa.String(length=128), nullable=True))
        batch.create_index("ix_runners_name", ["name"])


def downgrade() -> None:
    with op.batch_alter_table("runners") as batch:
        batch.drop_index("ix_runners_name")
        batch.drop_column("name")
