"""The database schema of the findings store, as SQLAlchemy 2 declarative models.

One row of ``findings`` is one *logical* finding of a component: one weakness at one place, however
many tools reported it (``finding_sources`` holds each tool's rule). Its identity is
``(workspace_id, component_id, fingerprint)``. ``scans`` records every scan the store was told
about, ``scan_findings`` which findings each scan saw (so any two scans can be compared, and
"new since a scan" asked), and ``triage_events`` every change of a finding's state.

The migrations in ``tasks/db/migrations`` create exactly this schema (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Constraint names that are the same on every database, so later migrations can name them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A 64-bit key on PostgreSQL; SQLite's rowid alias must be spelled INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")

FINDING_STATES = ("open", "false_positive", "accepted_risk", "fixed")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database (SQLite keeps none, and would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the findings store keeps only aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"not a datetime: {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Scan(Base):
    """A scan whose findings were recorded (any status; only ``SUCCEEDED`` ones are baselines)."""

    __tablename__ = "scans"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    test_id: Mapped[str] = mapped_column(String(64), unique=True)
    workspace_id: Mapped[str] = mapped_column(String(128))
    component_id: Mapped[str] = mapped_column(String(128))
    branch: Mapped[str | None] = mapped_column(String(255))
    commit_sha: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # What this scan was compared with when it was recorded (none: it was not compared).
    baseline_scan_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("scans.id", ondelete="SET NULL"))
    finding_count: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        # The baseline of a component on a branch: its latest succeeded scan.
        Index("ix_scans_baseline", "workspace_id", "component_id", "branch", "status", "created_at"),
    )


class Finding(Base):
    """One logical finding of a component, with what the latest scan that saw it reported."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(128))
    component_id: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(128))
    # The first source's tool and rule; every source is in finding_sources.
    tool: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(255))
    severity: Mapped[str] = mapped_column(String(16))
    # 0 critical ... 4 info (tasks.states.Severity.rank): the listing's order and its cursor.
    severity_rank: Mapped[int] = mapped_column(SmallInteger)
    path: Mapped[str] = mapped_column(Text, default="")  # "" when the finding has no file
    line: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")
    cwe: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(20), default="open")
    triage_reason: Mapped[str | None] = mapped_column(Text)
    triage_owner: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    triaged_by: Mapped[str | None] = mapped_column(String(255))
    triaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_seen_scan_id: Mapped[int] = mapped_column(BigId, ForeignKey("scans.id"))
    last_seen_scan_id: Mapped[int] = mapped_column(BigId, ForeignKey("scans.id"))

    __table_args__ = (
        UniqueConstraint("workspace_id", "component_id", "fingerprint"),
        CheckConstraint("state IN ('open', 'false_positive', 'accepted_risk', 'fixed')", name="state"),
        CheckConstraint("severity_rank BETWEEN 0 AND 4", name="severity_rank"),
        # The listing: a component's findings in (severity, id) order, by state or not.
        Index("ix_findings_list", "workspace_id", "component_id", "severity_rank", "id"),
        Index("ix_findings_state", "workspace_id", "component_id", "state", "severity_rank", "id"),
    )


class FindingSource(Base):
    """One tool's rule behind a logical finding (bandit B602 and ruff S602 are two sources of one)."""

    __tablename__ = "finding_sources"

    finding_id: Mapped[int] = mapped_column(BigId, ForeignKey("findings.id", ondelete="CASCADE"), primary_key=True)
    tool: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(255), primary_key=True)


class ScanFinding(Base):
    """A finding seen by a scan, with the severity and line it had there."""

    __tablename__ = "scan_findings"

    scan_id: Mapped[int] = mapped_column(BigId, ForeignKey("scans.id", ondelete="CASCADE"), primary_key=True)
    finding_id: Mapped[int] = mapped_column(BigId, ForeignKey("findings.id", ondelete="CASCADE"),
                                            primary_key=True)
    severity: Mapped[str] = mapped_column(String(16))
    line: Mapped[int | None] = mapped_column(Integer)

    # "Which scans saw this finding" (new since a scan; a finding's history).
    __table_args__ = (Index("ix_scan_findings_finding", "finding_id", "scan_id"),)


class TriageEvent(Base):
    """One change of a finding's state: by a person (triage) or by a scan (fixed, seen again)."""

    __tablename__ = "triage_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    finding_id: Mapped[int] = mapped_column(BigId, ForeignKey("findings.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    scan_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("scans.id", ondelete="SET NULL"))

    __table_args__ = (Index("ix_triage_events_finding", "finding_id", "id"),)
