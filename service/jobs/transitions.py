"""Every change of a job's state, in one table: event -> the states it may leave, the state it
enters, what else it requires and clears. ``move`` is the only writer of ``jobs.state``: one
conditional UPDATE built from the event's entry, so no module can move a job along a path the
table does not list.

Each move is keyed by the attempt number, so a step run twice (a re-delivered message) or a
worker that was given up on (a new attempt started) changes nothing; an event whose entry asks
for it is keyed by the runner holding the job too. A move that does not apply returns False and
leaves the row as it was: to the caller that is a stale or repeated step, not an error."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from exporters.errors import ConflictError
from service.db.jobs import JobState
from service.db.tables import JobRow, utcnow

UNFINISHED = frozenset(s for s in JobState if s.active)
# An attempt has *started* once work on it began and has not ended: its export step took it
# (``start_export``: exporting) or a runner claimed it (``claim``: measuring). Only a started
# attempt can be interrupted, so only it may be requeued under a new attempt (which spends one of
# LATBENCH_MAX_ATTEMPTS). A queued job never started, or exported and waiting for a runner, lost
# nothing to a restart or a silent worker: it is sent again at the same attempt instead.
STARTED = frozenset({JobState.EXPORTING, JobState.MEASURING})


class Event(str, Enum):
    START_EXPORT = "start_export"
    EXPORTED = "exported"
    CLAIM = "claim"
    FINISH = "finish"
    FINISH_ON_SERVER = "finish_on_server"
    FAIL = "fail"
    REQUEUE = "requeue"


class Holder(str, Enum):
    """Whether the move is keyed by the runner holding the job."""

    REQUIRED = "required"  # only the holder may make it
    OPTIONAL = "optional"  # keyed by the holder where the caller names one
    NONE = "none"


class TransitionError(ConflictError):
    """A move the table does not allow; names what it does allow."""


@dataclass(frozen=True)
class Transition:
    sources: frozenset[JobState]
    target: JobState
    holder: Holder = Holder.NONE
    guard: tuple[ColumnElement[bool], ...] = ()  # further conditions on the row
    guard_text: str = ""  # the guard in words, for the table in docs/architecture.md
    clears: tuple[str, ...] = ()  # columns reset to NULL by the move
    next_attempt: bool = False  # the move starts a new attempt (what held the old is ignored)
    why: str = ""  # for the table in docs/architecture.md


TRANSITIONS: dict[Event, Transition] = {
    Event.START_EXPORT: Transition(
        frozenset({JobState.QUEUED}),
        JobState.EXPORTING,
        guard=(JobRow.artifact_key.is_(None),),
        guard_text="no artifact yet",
        why="the export step takes the job",
    ),
    Event.EXPORTED: Transition(
        frozenset({JobState.EXPORTING}),
        JobState.QUEUED,
        why="every artifact is stored; the job waits for a runner",
    ),
    Event.CLAIM: Transition(
        frozenset({JobState.QUEUED}),
        JobState.MEASURING,
        guard=(JobRow.artifact_key.is_not(None),),
        guard_text="artifact exported",
        why="a runner of the job's class takes it",
    ),
    Event.FINISH: Transition(
        frozenset({JobState.MEASURING}),
        JobState.DONE,
        holder=Holder.REQUIRED,
        why="its runner posts the result",
    ),
    Event.FINISH_ON_SERVER: Transition(
        UNFINISHED,
        JobState.DONE,
        why="the server stores a result it made itself (a server-side kind)",
    ),
    Event.FAIL: Transition(
        UNFINISHED,
        JobState.FAILED,
        holder=Holder.OPTIONAL,
        why="an export, device, runner or timeout error",
    ),
    Event.REQUEUE: Transition(
        STARTED,
        JobState.QUEUED,
        clears=("runner_id", "measure_started_at", "artifact_key", "artifact_keys"),
        next_attempt=True,
        why="its runner or export worker went silent, or the server restarted, while it ran",
    ),
}


def move(
    session: Session,
    event: Event,
    *,
    job_id: str,
    attempt: int,
    held_by: str | None = None,
    commit: bool = True,
    **fields: Any,
) -> bool:
    """Apply ``event`` to the job if it is in one of the event's source states at ``attempt``
    (held by runner ``held_by`` where given, and meeting the event's guard); True if it moved.
    ``fields``: other columns the move sets (timestamps, the artifact keys, the error). Commits
    unless ``commit`` is False (the caller's transaction then carries the move)."""
    event = Event(event)
    entry = TRANSITIONS[event]
    if entry.holder is Holder.REQUIRED and held_by is None:
        raise TransitionError(f"{event.value} is made by the runner holding the job: name it")
    if entry.holder is Holder.NONE and held_by is not None:
        raise TransitionError(f"{event.value} is not keyed by a runner")
    values: dict[str, Any] = {
        **fields,
        **dict.fromkeys(entry.clears),
        "state": entry.target.value,
        "attempt": attempt + 1 if entry.next_attempt else attempt,
    }
    if not entry.target.active:
        values.update(active_key=None, finished_at=utcnow())
    conditions = [
        JobRow.id == job_id,
        JobRow.attempt == attempt,
        JobRow.state.in_(sorted(s.value for s in entry.sources)),
        *entry.guard,
    ]
    if held_by is not None:
        conditions.append(JobRow.runner_id == held_by)
    moved = session.execute(update(JobRow).where(*conditions).values(**values)).rowcount == 1
    if commit:
        session.commit()
    return moved


def beat_export(session: Session, *, job_id: str, attempt: int) -> bool:
    """The export's heartbeat (``beat_at``), written here beside the moves because it is keyed
    like one: only while ``attempt`` is exporting, so a worker given up on beats nothing. Not a
    move (the state stays); False once the attempt has moved on. Commits."""
    beaten = session.execute(
        update(JobRow)
        .where(
            JobRow.id == job_id,
            JobRow.attempt == attempt,
            JobRow.state == JobState.EXPORTING.value,
        )
        .values(beat_at=utcnow())
    )
    session.commit()
    return beaten.rowcount == 1


def require(session: Session, event: Event, *, job_id: str, attempt: int, **kwargs: Any) -> None:
    """``move`` where a move that does not apply is the caller's error: TransitionError saying
    where the job is and what ``event`` moves (a runner claiming a job it may not take)."""
    if move(session, event, job_id=job_id, attempt=attempt, **kwargs):
        return
    job = session.get(JobRow, job_id)
    where = f"is {job.state} at attempt {job.attempt}" if job else "does not exist"
    entry = TRANSITIONS[event]
    sources = " or ".join(sorted(s.value for s in entry.sources))
    holder = kwargs.get("held_by")
    needs = [entry.guard_text, f"held by {holder}" if holder else ""]
    raise TransitionError(
        f"job {job_id!r} {where}; {Event(event).value} moves a job {sources} at attempt "
        f"{attempt}{''.join(f', {n}' for n in needs if n)} to {entry.target.value}"
    )


def table_markdown() -> str:
    """The table as docs/architecture.md shows it (a test keeps the two the same)."""
    rows = [
        "| event | from | to | keyed by the holder | also requires | why |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    order = list(JobState)
    for event, entry in TRANSITIONS.items():
        sources = ", ".join(s.value for s in order if s in entry.sources)
        target = entry.target.value + (" (attempt + 1)" if entry.next_attempt else "")
        rows.append(
            f"| `{event.value}` | {sources} | {target} | {entry.holder.value} | "
            f"{entry.guard_text or '-'} | {entry.why} |"
        )
    return "\n".join(rows)
