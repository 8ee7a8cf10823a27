"""compare jobs: the models and artifacts of a job by role, and comparison results apart from
profile measurements

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("specs", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("artifact_keys", sa.JSON(), nullable=True))
    op.create_table(
        "comparisons",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("baseline_spec_hash", sa.String(length=64), nullable=False),
        sa.Column("candidate_spec_hash", sa.String(length=64), nullable=False),
        sa.Column("device_class", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("runner_id", sa.String(length=32), nullable=True),
        sa.Column("ratio", sa.Float(), nullable=False),
        sa.Column("comparison", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
    )
    for column in ("request_key", "baseline_spec_hash", "candidate_spec_hash", "device_class"):
        op.create_index(f"ix_comparisons_{column}", "comparisons", [column])
    op.create_index("ix_comparisons_created_at", "comparisons", ["created_at"])


def downgrade() -> None:
    op.drop_table("comparisons")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("artifact_keys")
        batch.drop_column("specs")
