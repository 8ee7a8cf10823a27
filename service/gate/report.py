"""A gate outcome for people: a terminal table and Markdown for a pull-request comment. Both state
the metric and each pair's threshold, and the host load while each pair was measured; the
Markdown's link column is there only when it links somewhere, and a run on a server links the
model page of the artifact the server holds (an upload's id, whatever the model's source)."""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table

from exporters.artifacts import spec_hash_of
from exporters.sources.ready import weights_said
from service.gate import Verdict
from service.gate.run import GateOutcome, PairOutcome

ICONS = {Verdict.PASS: "✅ pass", Verdict.REGRESSION: "❌ regression",
         Verdict.INCONCLUSIVE: "⚠️ inconclusive"}  # fmt: skip
HEADERS = ("model", "device", "baseline ms (95% CI)", "candidate ms (95% CI)", "ratio (CI)",
           "threshold", "host load", "verdict")  # fmt: skip


def _cells(p: PairOutcome) -> tuple[str, ...]:
    base, cand = p.comparison.baseline, p.comparison.candidate
    lo, hi = p.decision.ci95
    return (
        p.pair.model,
        p.pair.device.value,
        f"{base.median:.3f} [{base.ci95[0]:.3f}, {base.ci95[1]:.3f}]",
        f"{cand.median:.3f} [{cand.ci95[0]:.3f}, {cand.ci95[1]:.3f}]",
        f"{p.decision.ratio:.3f} [{lo:.3f}, {hi:.3f}]",
        f"+{p.pair.threshold:.1%}",
        host_load(p),
        ICONS[p.decision.verdict],
    )


def host_load(p: PairOutcome) -> str:
    """What other processes took of the CPU while the pair was measured (the worst round), and
    the 1-minute load average at its end."""
    rounds = [load for load in p.comparison.host_load if load]
    if not rounds:
        return "not recorded"
    others = max(load.get("others_cpu_pct", 0.0) for load in rounds)
    loadavg = rounds[-1].get("loadavg_1m_end")
    average = f", load {loadavg:.1f}" if loadavg is not None else ""
    return f"others {others:.0f}% CPU{average}"


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
    result = Table(*HEADERS, title=f"latbench gate: {outcome.verdict.name.lower()} "
                   f"(ratio of {outcome.metric} time)", caption=outcome.rule)  # fmt: skip
    for p in outcome.pairs:
        result.add_row(*_cells(p))
    return result


def dashboard_link(base_url: str, p: PairOutcome, uploaded: Mapping[str, str]) -> str:
    """The candidate's model page, which lists the model's gate runs per device: the page of
    the server's copy (``uploaded``: local artifact key -> the server's id) when there is one."""
    key = p.pair.candidate.artifact.key
    spec_hash = spec_hash_of(uploaded.get(key, key))
    return f"[dashboard]({base_url.rstrip('/')}/dashboard/models/{spec_hash})"


def _weights(outcome: GateOutcome) -> str:
    sides = [s for p in outcome.pairs for s in (p.pair.baseline, p.pair.candidate)]
    return weights_said(*(not s.built for s in sides)) if sides else "random"


def markdown(
    outcome: GateOutcome, *, dashboard: str | None = None, uploaded: Mapping[str, str] | None = None
) -> str:
    head = f"### latbench gate: {ICONS[outcome.verdict]}"
    headers = (*HEADERS, "dashboard") if dashboard else HEADERS
    rows = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    for p in outcome.pairs:
        link = (dashboard_link(dashboard, p, uploaded or {}),) if dashboard else ()
        cells = (*_cells(p), *link)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    notes = [f"- {line}" for line in remarks(outcome)]
    footer = (
        f"<sub>{outcome.rule}; a pair fails when its {outcome.metric}-time ratio exceeds 1 + its "
        f"threshold; medians are wall-clock latency; host load: what other processes took of the "
        f"CPU during the pair's worst round; weights {_weights(outcome)}.</sub>"
    )
    return "\n".join([head, "", *rows, "", *notes, "", footer]) + "\n"
