"""predictions: predict jobs' results, apart from measurements

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("device_class", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("runner_id", sa.String(length=32), nullable=True),
        sa.Column("median_ms", sa.Float(), nullable=False),
        sa.Column("p90_ms", sa.Float(), nullable=True),
        sa.Column("measurement", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
    )
    for column in ("request_key", "spec_hash", "model", "device_class", "created_at"):
        op.create_index(f"ix_predictions_{column}", "predictions", [column])


def downgrade() -> None:
    op.drop_table("predictions")
