"""The findings store: scans, logical findings and their sources, what each scan saw, triage history.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Written out here, not imported from tasks.db.models: a migration is the schema as it was then.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "scans",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("test_id", sa.String(64), nullable=False),
        sa.Column("workspace_id", sa.String(128), nullable=False),
        sa.Column("component_id", sa.String(128), nullable=False),
        sa.Column("branch", sa.String(255), nullable=True),
        sa.Column("commit_sha", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("recorded_at", Time, nullable=False),
        sa.Column("baseline_scan_id", BigId, nullable=True),
        sa.Column("finding_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["baseline_scan_id"], ["scans.id"], name="fk_scans_baseline_scan_id_scans",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_scans"),
        sa.UniqueConstraint("test_id", name="uq_scans_test_id"),
    )
    op.create_index("ix_scans_baseline", "scans", ["workspace_id", "component_id", "branch", "status", "created_at"])

    op.create_table(
        "findings",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(128), nullable=False),
        sa.Column("component_id", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(255), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("severity_rank", sa.SmallInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("cwe", sa.String(32), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("triage_reason", sa.Text(), nullable=True),
        sa.Column("triage_owner", sa.String(255), nullable=True),
        sa.Column("expires_at", Time, nullable=True),
        sa.Column("triaged_by", sa.String(255), nullable=True),
        sa.Column("triaged_at", Time, nullable=True),
        sa.Column("first_seen_scan_id", BigId, nullable=False),
        sa.Column("last_seen_scan_id", BigId, nullable=False),
        sa.CheckConstraint("state IN ('open', 'false_positive', 'accepted_risk', 'fixed')", name="ck_findings_state"),
        sa.CheckConstraint("severity_rank BETWEEN 0 AND 4", name="ck_findings_severity_rank"),
        sa.ForeignKeyConstraint(["first_seen_scan_id"], ["scans.id"], name="fk_findings_first_seen_scan_id_scans"),
        sa.ForeignKeyConstraint(["last_seen_scan_id"], ["scans.id"], name="fk_findings_last_seen_scan_id_scans"),
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
        sa.UniqueConstraint("workspace_id", "component_id", "fingerprint",
                            name="uq_findings_workspace_id_component_id_fingerprint"),
    )
    op.create_index("ix_findings_list", "findings", ["workspace_id", "component_id", "severity_rank", "id"])
    op.create_index("ix_findings_state", "findings", ["workspace_id", "component_id", "state", "severity_rank", "id"])

    op.create_table(
        "finding_sources",
        sa.Column("finding_id", BigId, nullable=False),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(["finding_id"], ["findings.id"], name="fk_finding_sources_finding_id_findings",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("finding_id", "tool", "rule_id", name="pk_finding_sources"),
    )

    op.create_table(
        "scan_findings",
        sa.Column("scan_id", BigId, nullable=False),
        sa.Column("finding_id", BigId, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["finding_id"], ["findings.id"], name="fk_scan_findings_finding_id_findings",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["scan_id"], ["scans.id"], name="fk_scan_findings_scan_id_scans", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("scan_id", "finding_id", name="pk_scan_findings"),
    )
    op.create_index("ix_scan_findings_finding", "scan_findings", ["finding_id", "scan_id"])

    op.create_table(
        "triage_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("finding_id", BigId, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("at", Time, nullable=False),
        sa.Column("from_state", sa.String(20), nullable=False),
        sa.Column("to_state", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("expires_at", Time, nullable=True),
        sa.Column("scan_id", BigId, nullable=True),
        sa.ForeignKeyConstraint(["finding_id"], ["findings.id"], name="fk_triage_events_finding_id_findings",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["scan_id"], ["scans.id"], name="fk_triage_events_scan_id_scans", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_triage_events"),
    )
    op.create_index("ix_triage_events_finding", "triage_events", ["finding_id", "id"])


def downgrade() -> None:
    op.drop_table("triage_events")
    op.drop_table("scan_findings")
    op.drop_table("finding_sources")
    op.drop_table("findings")
    op.drop_table("scans")
