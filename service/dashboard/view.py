"""What the dashboard and ``latbench report`` show, built once from stored rows.

A point is one thing that was actually measured (or predicted, or published) on one device class:
the latest result of a request key (spec hash + device + format + precision + settings), never a
model name. Its top-1 is the user's own when they attached one to that spec hash, else the
published one only when the spec *is* the published model (no overrides, the published input
side), else it has none and is listed apart. Four kinds, each its own marker:

- ``published``: latency and top-1 both from the packaged reference data (another machine of
  the same class: compare rankings, not absolute values);
- ``measured``: latency measured here, published top-1;
- ``predicted``: a predict job's result (table ``predictions``), whose measurement carries
  ``"kind": "predicted"`` and its interval
  in ``latency_ms.interval`` (or ``ci95``), and the published top-1;
- ``user``: measured or predicted latency with the top-1 the user attached.

Every point says its precision (the spec's, else the format's default). An int8 result whose
artifact was calibrated on synthetic inputs is latency only: its ranges came from noise, so it
is never plotted against a top-1 and never on an accuracy front; it is listed apart, saying so.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from itertools import combinations
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from exporters.formats import ExportFormat, Precision
from service import reference
from service.dashboard.pareto import frontier
from service.db.accuracy import accuracies
from service.db.results import Listed, list_results
from service.db.tables import AccuracyRow, ResultRow, SpecRow


class Kind(str, Enum):
    PUBLISHED = "published"
    MEASURED = "measured"
    PREDICTED = "predicted"
    USER = "user"


@dataclass(frozen=True)
class ChartPoint:
    key: str  # the request key of a result; "published:<model>:<device>" for reference rows
    model: str
    label: str
    family: str | None
    device: str
    kind: Kind
    latency_ms: float
    latency_low: float | None
    latency_high: float | None
    top1: float
    top1_source: str
    latency_source: str
    params: int | None
    macs: int | None
    spec_hash: str | None
    created_at: str | None
    precision: str = "fp32"
    calibration: str | None = None  # quantized points: "user" (never "synthetic": unplotted)


NO_TOP1 = "no top-1 known for what was measured"
SYNTHETIC = "latency only: int8 calibrated on synthetic inputs"


@dataclass(frozen=True)
class Unplotted:
    """Measured on a device, but no top-1 applies to what was measured (``reason``)."""

    model: str
    label: str
    device: str
    spec_hash: str
    latency_ms: float
    precision: str = "fp32"
    reason: str = NO_TOP1


@dataclass(frozen=True)
class NoPrediction:
    """A prediction made outside the predictor's domain (asked for with allow_out_of_domain):
    listed as "no prediction" with why, never drawn as a point."""

    model: str
    device: str
    spec_hash: str
    reason: str


@dataclass(frozen=True)
class Flip:
    faster: str  # faster on `device_a`, slower on `device_b`
    slower: str
    device_a: str
    device_b: str


@dataclass
class Ranking:
    devices: list[str]
    ranks: dict[str, dict[str, int]]  # model -> device -> rank (1 = fastest)
    kinds: dict[str, dict[str, str]]  # model -> device -> kind of the latency ranked
    flips: list[Flip]


@dataclass
class Dashboard:
    devices: list[str]
    families: list[str]
    points: list[ChartPoint]
    precisions: list[str]
    frontier: dict[str, list[str]]  # device -> keys of the undominated points, fastest first
    published_front: dict[str, list[str]]  # same, over the published points alone
    unplotted: list[Unplotted]
    no_prediction: list[NoPrediction]
    ranking: Ranking
    sources: list[str] = field(default_factory=list)
    has_reference: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def is_published_spec(spec: SpecRow, ref: reference.Reference | None) -> bool:
    """The spec builds the very model the reference row describes: no overrides, and the input
    (if given) is one 3-channel image at the published side."""
    if ref is None or spec.body.get("overrides"):
        return False
    shape = spec.body.get("input")
    if shape is None:
        return True
    size = (shape.get("batch"), shape.get("channels"), shape.get("height"), shape.get("width"))
    return ref.resolution is None or size == (1, 3, ref.resolution, ref.resolution)


def _latest(rows: Iterable[Listed]) -> list[tuple[ResultRow, SpecRow]]:
    """The newest result of each request key (rows come newest first)."""
    seen: dict[str, tuple[ResultRow, SpecRow]] = {}
    for row in rows:
        seen.setdefault(row.result.request_key, (row.result, row.spec))
    return list(seen.values())


def interval(latency: dict[str, Any]) -> tuple[float | None, float | None]:
    low, high = latency.get("interval") or latency.get("ci95") or (None, None)
    return low, high


def _user_source(acc: AccuracyRow) -> str:
    side = f", {acc.resolution} px" if acc.resolution else ""
    note = f"; {acc.note}" if acc.note else ""
    return f"user: {acc.source} ({acc.dataset}{side}{note})"


def precision_of(result: ResultRow, spec: SpecRow) -> str:
    """The precision a result was measured at: the spec's, else its format's default."""
    stated = spec.body.get("precision")
    return stated or ExportFormat(result.format).default_precision(None).value


def _label(result: ResultRow, spec: SpecRow, custom: bool, precision: str) -> str:
    """The model, its spec hash when it is not the published one, its precision when it is
    quantized (so a quantized point never stands for the float model in the ranking)."""
    label = f"{result.model} [{spec.hash[:6]}]" if custom else result.model
    return f"{label} ({precision})" if Precision(precision).quantized else label


def _measured_point(
    result: ResultRow, spec: SpecRow, top1: float, top1_source: str, kind: Kind, custom: bool
) -> ChartPoint:
    m = result.measurement
    low, high = interval(m["latency_ms"])
    threads = (m.get("settings") or {}).get("threads")
    how = "predicted" if m.get("kind") == Kind.PREDICTED.value else "measured here"
    precision = precision_of(result, spec)
    return ChartPoint(
        key=result.request_key,
        model=result.model,
        label=_label(result, spec, custom, precision),
        family=spec.family,
        device=result.device_class,
        kind=kind,
        latency_ms=result.median_ms,
        latency_low=low,
        latency_high=high,
        top1=top1,
        top1_source=top1_source,
        latency_source=f"{how}: {result.format}, {threads or '?'} thread(s), "
        f"runner {result.runner_id or 'local'}, {result.created_at:%Y-%m-%d %H:%M} UTC",
        params=spec.params,
        macs=spec.macs,
        spec_hash=spec.hash,
        created_at=result.created_at.isoformat(),
        precision=precision,
        calibration=(m.get("quantization") or {}).get("calibration"),
    )


def _published_points(
    refs: dict[str, reference.Reference],
    published: dict[tuple[str, str], reference.PublishedLatency],
) -> list[ChartPoint]:
    points = []
    for (name, device), pub in sorted(published.items()):
        ref = refs.get(name)
        if ref is None:
            continue
        points.append(
            ChartPoint(
                key=f"published:{name}:{device}",
                model=name,
                label=name,
                family=ref.family,
                device=device,
                kind=Kind.PUBLISHED,
                latency_ms=pub.latency_ms,
                latency_low=None,
                latency_high=None,
                top1=ref.top1,
                top1_source=ref.source,
                latency_source=f"{pub.source} ({pub.device})",
                params=round(ref.params_m * 1e6) if ref.params_m else None,
                macs=round(ref.gmacs * 1e9) if ref.gmacs else None,
                spec_hash=None,
                created_at=None,
            )
        )
    return points


def _ranking(points: list[ChartPoint]) -> Ranking:
    """Per device, one latency per published zoo model (measured, else predicted, else
    published), ranked; models seen on one device only are left out. A flip is a pair ordered
    one way on one device and the other way on another."""
    preference = {Kind.MEASURED: 0, Kind.PREDICTED: 1, Kind.PUBLISHED: 2}
    chosen: dict[tuple[str, str], ChartPoint] = {}
    for p in points:
        if p.kind not in preference or p.label != p.model:
            continue
        held = chosen.get((p.model, p.device))
        if held is None or preference[p.kind] < preference[held.kind]:
            chosen[(p.model, p.device)] = p
    on_devices: dict[str, set[str]] = {}
    for model, device in chosen:
        on_devices.setdefault(model, set()).add(device)
    models = sorted(m for m, devs in on_devices.items() if len(devs) > 1)
    devices = sorted({d for m in models for d in on_devices[m]})
    ranks: dict[str, dict[str, int]] = {m: {} for m in models}
    for device in devices:
        here = sorted((chosen[(m, device)].latency_ms, m) for m in models if (m, device) in chosen)
        for rank, (_ms, model) in enumerate(here, start=1):
            ranks[model][device] = rank
    flips = []
    for a, b in combinations(models, 2):
        shared = sorted(set(ranks[a]) & set(ranks[b]))
        for da, db in combinations(shared, 2):
            if (ranks[a][da] < ranks[b][da]) != (ranks[a][db] < ranks[b][db]):
                faster = a if ranks[a][da] < ranks[b][da] else b
                flips.append(Flip(faster, b if faster == a else a, da, db))
    kinds = {m: {d: chosen[(m, d)].kind.value for d in ranks[m]} for m in models}
    return Ranking(devices=devices, ranks=ranks, kinds=kinds, flips=flips)


OWN = ("measured here", "predicted", "user:")  # sources of this service's own figures


def _front(points: list[ChartPoint], device: str, *, published: bool) -> list[str]:
    """Keys of the undominated points of one device: the published ones (latency from another
    machine) and this service's own are two fronts, never mixed."""
    mine = (p for p in points if p.device == device and (p.kind is Kind.PUBLISHED) == published)
    return [p.key for p in frontier(mine)]


def build(
    session: Session,
    *,
    reference_csv: Path | None = None,
    device: str | None = None,
    families: set[str] | None = None,
    kinds: set[Kind] | None = None,
    precisions: set[str] | None = None,
    viewer: str | None = None,
) -> Dashboard:
    """Every point ``viewer`` may see (``owners.visible``; None: all), filtered by device,
    family, kind and precision; the fronts are computed on what is shown. The ranking across
    devices ignores the device filter (it is about all of them)."""
    refs = reference.load(reference_csv)
    published = reference.load_latency(reference_csv)
    rows = _latest(
        list_results(session, limit=10000, viewer=viewer)
        + list_results(session, kind="predicted", limit=10000, viewer=viewer)
    )
    attached = accuracies(session, subjects=[spec.hash for _, spec in rows])
    points = _published_points(refs, published)
    unplotted, no_prediction = [], []
    for result, spec in rows:
        domain = result.measurement.get("domain") or {}
        if domain.get("inside") is False:
            why = domain.get("note") or "outside the training domain"
            no_prediction.append(NoPrediction(spec.model, result.device_class, spec.hash, why))
            continue
        ref = refs.get(spec.model)
        acc = attached.get(spec.hash)
        latency_kind = (
            Kind.PREDICTED if result.measurement.get("kind") == "predicted" else Kind.MEASURED
        )
        custom = not is_published_spec(spec, ref)
        stated = result.measurement.get("quantization") or {}
        if stated.get("calibration") == "synthetic":
            unplotted.append(_apart(result, spec, custom, SYNTHETIC))
            continue
        if acc is not None:
            point = _measured_point(result, spec, acc.top1, _user_source(acc), Kind.USER, custom)
        elif not custom:
            point = _measured_point(result, spec, ref.top1, ref.source, latency_kind, custom)
        else:
            unplotted.append(_apart(result, spec, True, NO_TOP1))
            continue
        points.append(point)
    every_family = sorted({p.family for p in points if p.family})
    kept = [
        p
        for p in points
        if (not families or p.family in families)
        and (not kinds or p.kind in kinds)
        and (not precisions or p.precision in precisions)
    ]
    shown = [p for p in kept if device is None or p.device == device]
    devices = sorted({p.device for p in points} | {u.device for u in unplotted})
    sources = sorted(
        {s for p in shown for s in (p.top1_source, p.latency_source) if not s.startswith(OWN)}
    )
    return Dashboard(
        devices=devices,
        families=every_family,
        points=sorted(shown, key=lambda p: (p.device, p.latency_ms)),
        precisions=sorted({p.precision for p in points} | {u.precision for u in unplotted}),
        frontier={d: _front(shown, d, published=False) for d in devices},
        published_front={d: _front(shown, d, published=True) for d in devices},
        unplotted=[u for u in unplotted if device is None or u.device == device],
        no_prediction=[n for n in no_prediction if device is None or n.device == device],
        ranking=_ranking(kept),
        sources=sources,
        has_reference=bool(refs),
    )


def _apart(result: ResultRow, spec: SpecRow, custom: bool, reason: str) -> Unplotted:
    precision = precision_of(result, spec)
    label = _label(result, spec, custom, precision)
    return Unplotted(
        spec.model, label, result.device_class, spec.hash, result.median_ms, precision, reason
    )


CSV_FIELDS = [f.name for f in fields(ChartPoint)] + ["on_frontier"]


def to_csv(view: Dashboard) -> str:
    """The shown points, one row each, with whether each is on its device's frontier."""
    on_front = {k for keys in view.frontier.values() for k in keys}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for p in view.points:
        row = asdict(p)
        row["kind"] = p.kind.value
        writer.writerow({**row, "on_frontier": p.key in on_front})
    return out.getvalue()
