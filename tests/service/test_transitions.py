"""The one table of job state changes, on real SQLite and PostgreSQL: every entry moves a job
from each of its source states to its target, every other (event, state) pair is refused and
changes nothing, holders and guards are checked, and no other module writes a job's state."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import update

from service.db.jobs import JobState
from service.db.tables import JobRow
from service.jobs.transitions import (
    TRANSITIONS,
    Event,
    Holder,
    TransitionError,
    move,
    require,
    table_markdown,
)
from tests.service.test_db import _job

ROOT = Path(__file__).resolve().parents[2]
KEY = "a" * 32 + "-onnx-fp32"
HOLDER = "runner-1"


def _in_state(session, state: JobState, event: Event, key: str) -> str:
    """A fresh job at attempt 1 in ``state``, meeting every condition of ``event`` but its
    source states: held by HOLDER, exported unless the event wants no artifact yet."""
    job, _ = _job(session, key=key)
    artifact = None if event is Event.START_EXPORT else KEY
    values = {"state": state.value, "artifact_key": artifact, "runner_id": HOLDER}
    session.execute(update(JobRow).where(JobRow.id == job.id).values(**values))  # test setup
    session.commit()
    return job.id


def _holder(event: Event) -> str | None:
    return None if TRANSITIONS[event].holder is Holder.NONE else HOLDER


def _row(session, job_id: str) -> tuple:
    session.expire_all()
    job = session.get(JobRow, job_id)
    return job.state, job.attempt, job.artifact_key, job.runner_id, job.finished_at, job.error


def test_each_entry_of_the_table_moves_a_job_from_each_of_its_sources(sessions):
    exercised = set()
    with sessions() as s:
        for n, (event, entry) in enumerate(TRANSITIONS.items()):
            for m, source in enumerate(sorted(entry.sources)):
                job_id = _in_state(s, source, event, key=f"{n}{m}".ljust(64, "k"))
                assert move(s, event, job_id=job_id, attempt=1, held_by=_holder(event)), (
                    event,
                    source,
                )
                state, attempt, artifact, runner, finished, _ = _row(s, job_id)
                assert state == entry.target.value
                assert attempt == (2 if entry.next_attempt else 1)
                assert (finished is not None) == (not entry.target.active)
                if "artifact_key" in entry.clears:
                    assert artifact is None and runner is None
                exercised.add((event, source))
    assert exercised == {(e, s) for e, t in TRANSITIONS.items() for s in t.sources}
    assert {e for e, _ in exercised} == set(Event)


def test_every_move_not_in_the_table_is_refused_and_changes_nothing(sessions):
    refused = 0
    with sessions() as s:
        for n, (event, entry) in enumerate(TRANSITIONS.items()):
            for m, state in enumerate(s_ for s_ in JobState if s_ not in entry.sources):
                job_id = _in_state(s, state, event, key=f"{n}{m}".ljust(64, "r"))
                before = _row(s, job_id)
                assert not move(s, event, job_id=job_id, attempt=1, held_by=_holder(event))
                with pytest.raises(TransitionError, match=f"is {state.value} at attempt 1"):
                    require(s, event, job_id=job_id, attempt=1, held_by=_holder(event))
                assert _row(s, job_id) == before
                refused += 1
    # the final states leave by no event; each event refuses the states it does not list
    assert refused == sum(len(JobState) - len(t.sources) for t in TRANSITIONS.values())
    assert not any({JobState.DONE, JobState.FAILED} & t.sources for t in TRANSITIONS.values())


def test_a_stale_attempt_another_holder_or_an_unmet_guard_is_refused(sessions):
    with sessions() as s:
        measuring = _in_state(s, JobState.MEASURING, Event.FINISH, key="m" * 64)
        assert not move(s, Event.FINISH, job_id=measuring, attempt=2, held_by=HOLDER)
        assert not move(s, Event.FINISH, job_id=measuring, attempt=1, held_by="runner-2")
        assert not move(s, Event.FAIL, job_id=measuring, attempt=1, held_by="runner-2", error="x")
        with pytest.raises(TransitionError, match="made by the runner holding the job"):
            move(s, Event.FINISH, job_id=measuring, attempt=1)
        with pytest.raises(TransitionError, match="not keyed by a runner"):
            move(s, Event.CLAIM, job_id=measuring, attempt=1, held_by=HOLDER)
        exported = _in_state(s, JobState.QUEUED, Event.CLAIM, key="e" * 64)
        assert not move(s, Event.START_EXPORT, job_id=exported, attempt=1)  # has its artifact
        unexported = _in_state(s, JobState.QUEUED, Event.START_EXPORT, key="u" * 64)
        with pytest.raises(TransitionError, match="artifact exported"):
            require(s, Event.CLAIM, job_id=unexported, attempt=1)
        assert _row(s, measuring)[0] == "measuring"
        assert _row(s, unexported)[0] == "queued"


def test_no_module_but_the_table_writes_a_job_state():
    """Every ``update(JobRow)`` in the packages is the table's: a second writer would move
    jobs along paths the table does not list."""
    writers = []
    for package in ("service", "devices", "exporters"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", None) == "update"
                    and any(getattr(arg, "id", None) == "JobRow" for arg in node.args)
                ):
                    writers.append(str(path.relative_to(ROOT)))
    assert set(writers) == {"service/jobs/transitions.py"}  # its moves and the export's beat


def test_the_architecture_doc_shows_the_table_as_it_is():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert table_markdown() in doc
