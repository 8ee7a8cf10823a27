"""A gate outcome for people: a terminal table and Markdown for a pull-request comment."""

from __future__ import annotations

from rich.table import Table

from exporters.artifacts import spec_hash_of
from exporters.sources.ready import weights_said
from service.gate import Verdict
from service.gate.run import GateOutcome, PairOutcome

ICONS = {Verdict.PASS: "✅ pass", Verdict.REGRESSION: "❌ regression",
         Verdict.INCONCLUSIVE: "⚠️ inconclusive"}  # fmt: skip
HEADERS = ("model", "device", "baseline ms (95% CI)", "candidate ms (95% CI)", "ratio (CI)",
           "verdict")  # fmt: skip


def _cells(p: PairOutcome) -> tuple[str, ...]:
    base, cand = p.comparison.baseline, p.comparison.candidate
    lo, hi = p.decision.ci95
    return (
        p.pair.model,
        p.pair.device.value,
        f"{base.median:.3f} [{base.ci95[0]:.3f}, {base.ci95[1]:.3f}]",
        f"{cand.median:.3f} [{cand.ci95[0]:.3f}, {cand.ci95[1]:.3f}]",
        f"{p.decision.ratio:.3f} [{lo:.3f}, {hi:.3f}]",
        ICONS[p.decision.verdict],
    )


def remarks(outcome: GateOutcome) -> list[str]:
    """What qualifies the numbers: how each side was obtained, what more sampling would need."""
    lines = []
    for p in outcome.pairs:
        base, cand = p.pair.baseline, p.pair.candidate
        sides = (
            f"baseline `{base.ref}` ({base.reparam_note}); "
            f"candidate `{cand.ref}` ({cand.reparam_note})"
        )
        lines.append(f"{p.pair.model} on {p.pair.device.value}: {sides}")
        if p.decision.verdict is Verdict.INCONCLUSIVE:
            need = (
                f"about {p.reloads_needed} session pairs would decide at this scatter"
                if p.reloads_needed
                else "more samples would not decide it"
            )
            lines.append(
                f"{p.pair.model} on {p.pair.device.value}: inconclusive after "
                f"{p.comparison.reloads} session pairs (budget {outcome.budget.max_reloads}); "
                f"{need} (raise --budget-reloads)"
            )
        lines.extend(f"{p.pair.model}: {note}" for note in p.comparison.notes)
    return lines


def table(outcome: GateOutcome) -> Table:
    result = Table(*HEADERS, title=f"latbench gate: {outcome.verdict.name.lower()}",
                   caption=outcome.rule)  # fmt: skip
    for p in outcome.pairs:
        result.add_row(*_cells(p))
    return result


def dashboard_link(base_url: str | None, p: PairOutcome) -> str:
    """The candidate's model page, which lists the model's gate runs per device."""
    if not base_url:
        return "—"
    spec_hash = spec_hash_of(p.pair.candidate.artifact.key)
    return f"[dashboard]({base_url.rstrip('/')}/dashboard/models/{spec_hash})"


def _weights(outcome: GateOutcome) -> str:
    sides = [s for p in outcome.pairs for s in (p.pair.baseline, p.pair.candidate)]
    return weights_said(*(not s.built for s in sides)) if sides else "random"


def markdown(outcome: GateOutcome, *, dashboard: str | None = None) -> str:
    head = f"### latbench gate: {ICONS[outcome.verdict]}"
    rows = ["| " + " | ".join((*HEADERS, "")) + " |", "|" + " --- |" * (len(HEADERS) + 1)]
    for p in outcome.pairs:
        cells = (*_cells(p), dashboard_link(dashboard, p))
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    notes = [f"- {line}" for line in remarks(outcome)]
    footer = (
        f"<sub>{outcome.rule}; medians are wall-clock latency, the ratio is on {outcome.metric} "
        f"time; weights {_weights(outcome)}.</sub>"
    )
    return "\n".join([head, "", *rows, "", *notes, "", footer]) + "\n"
