"""user accuracy: top-1 attached by a user to a spec or an uploaded artifact

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_accuracy",
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("top1", sa.Float(), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("resolution", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subject"),
    )


def downgrade() -> None:
    op.drop_table("user_accuracy")
