"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runners",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("device_class", sa.String(length=32), nullable=False),
        sa.Column("description", sa.JSON(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("current_job_id", sa.String(length=32), nullable=True),
        sa.Column("registered_at", sa.DateTime(), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_runners_device_class"), "runners", ["device_class"], unique=False)
    op.create_table(
        "specs",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("params", sa.BigInteger(), nullable=True),
        sa.Column("macs", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
    )
    op.create_index(op.f("ix_specs_family"), "specs", ["family"], unique=False)
    op.create_index(op.f("ix_specs_model"), "specs", ["model"], unique=False)
    op.create_table(
        "artifacts",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("precision", sa.String(length=8), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["spec_hash"],
            ["specs.hash"],
        ),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(op.f("ix_artifacts_spec_hash"), "artifacts", ["spec_hash"], unique=False)
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("device_class", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("active_key", sa.String(length=64), nullable=True),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("runner_id", sa.String(length=32), nullable=True),
        sa.Column("artifact_key", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("measure_started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["spec_hash"],
            ["specs.hash"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("active_key"),
    )
    op.create_index(op.f("ix_jobs_created_at"), "jobs", ["created_at"], unique=False)
    op.create_index(op.f("ix_jobs_device_class"), "jobs", ["device_class"], unique=False)
    op.create_index(op.f("ix_jobs_request_key"), "jobs", ["request_key"], unique=False)
    op.create_index(op.f("ix_jobs_spec_hash"), "jobs", ["spec_hash"], unique=False)
    op.create_index(op.f("ix_jobs_state"), "jobs", ["state"], unique=False)
    op.create_index(op.f("ix_jobs_user"), "jobs", ["user"], unique=False)
    op.create_table(
        "results",
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
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
    )
    op.create_index(op.f("ix_results_created_at"), "results", ["created_at"], unique=False)
    op.create_index(op.f("ix_results_device_class"), "results", ["device_class"], unique=False)
    op.create_index(op.f("ix_results_model"), "results", ["model"], unique=False)
    op.create_index(op.f("ix_results_request_key"), "results", ["request_key"], unique=False)
    op.create_index(op.f("ix_results_spec_hash"), "results", ["spec_hash"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_results_spec_hash"), table_name="results")
    op.drop_index(op.f("ix_results_request_key"), table_name="results")
    op.drop_index(op.f("ix_results_model"), table_name="results")
    op.drop_index(op.f("ix_results_device_class"), table_name="results")
    op.drop_index(op.f("ix_results_created_at"), table_name="results")
    op.drop_table("results")
    op.drop_index(op.f("ix_jobs_user"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_state"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_spec_hash"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_request_key"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_device_class"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_created_at"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_index(op.f("ix_artifacts_spec_hash"), table_name="artifacts")
    op.drop_table("artifacts")
    op.drop_index(op.f("ix_specs_model"), table_name="specs")
    op.drop_index(op.f("ix_specs_family"), table_name="specs")
    op.drop_table("specs")
    op.drop_index(op.f("ix_runners_device_class"), table_name="runners")
    op.drop_table("runners")
