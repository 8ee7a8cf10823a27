"""users and owners: a token per person, who uploaded each artifact, provisioned runners

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "uploads",
        sa.Column("artifact_key", sa.String(length=128), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("artifact_key", "owner"),
    )
    for column in ("content_hash", "owner"):
        op.create_index(f"ix_uploads_{column}", "uploads", [column])
    op.create_table(
        "runner_credentials",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("device_classes", sa.JSON(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("runners") as batch:
        batch.add_column(sa.Column("credential", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_runners_credential", ["credential"])


def downgrade() -> None:
    with op.batch_alter_table("runners") as batch:
        batch.drop_index("ix_runners_credential")
        batch.drop_column("revoked_at")
        batch.drop_column("credential")
    op.drop_table("runner_credentials")
    op.drop_table("uploads")
    op.drop_table("users")
