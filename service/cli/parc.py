"""`latbench parc-forms`: time ParC's spatial and FFT forms for every ParC layer of a model on a
runner, give each layer the faster one, print the plan with the spec that builds it (the plan is
a ``parc_form`` override, so the artifact key records which form each layer got) and export that
spec (``--no-export``: only measure)."""

from __future__ import annotations

import json
from functools import partial
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from devices.jobs.lock import host_lock
from exporters.errors import LatbenchError, SpecError
from service.cli import EXIT_FAILURE, fail, host_lock_path
from service.cli.export import export_spec
from service.cli.profile import AsJson, Device, RunnerName, Threads, choose


def _plan(
    model: str, device: str | None, runner_name: str | None, settings: dict[str, Any], export: bool
) -> dict[str, Any]:
    import torch

    from devices.runner import get_runner
    from devices.settings import parse_settings
    from exporters.spec import resolve_spec_argument
    from exporters.zoo import build, resolve
    from exporters.zoo.native.parc import parc_layers
    from exporters.zoo.native.parc_select import choose_forms

    spec = resolve_spec_argument(model)
    resolved = resolve(spec)
    net = build(resolved)
    if not parc_layers(net):
        raise SpecError(f"{spec.model} has no ParC layers: nothing to choose", field="model")
    name, fmt = choose(device, runner_name)
    runner, measure = get_runner(name), parse_settings(settings)
    example = torch.randn(*resolved.input.shape)
    compare = partial(runner.compare, settings=measure)
    with host_lock(host_lock_path(), exclusive=True):
        plan = choose_forms(net, example, compare, fmt=fmt, precision=spec.precision_for(fmt))
    kept = {key: value for key, value in spec.overrides.items() if key != "parc_form"}
    chosen = spec.model_copy(update={"overrides": {**kept, **plan.overrides()}})
    result = {
        "model": spec.model,
        "weights": "random",
        "input_shape": list(resolved.input.shape),
        "device": runner.describe(measure).to_dict(),
        "plan": plan.to_dict(),
        "spec": chosen.model_dump(mode="json", exclude_none=True),
    }
    if export:
        result["export"] = export_spec(chosen, (fmt,), quiet=True).to_dict()
    return result


def _print(result: dict[str, Any]) -> None:
    console = Console()
    plan = result["plan"]
    console.print(
        f"[bold]{result['model']}[/] on {result['device']['runner']} "
        f"({result['device']['cpu_model']}), input {result['input_shape']}, "
        f"random weights"
    )
    table = Table(
        "axis", "channels", "feature map", "spatial ms", "fft ms", "fft/spatial (95% CI)", "form"
    )
    for t in plan["timings"]:
        s, ci = t["shape"], t["ci95"]
        ratio = "n/a" if t["ratio"] is None else f"{t['ratio']:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]"
        fft = "n/a" if t["fft_ms"] is None else f"{t['fft_ms']:.4f}"
        table.add_row(
            s["orientation"],
            str(s["channels"]),
            f"{s['height']}x{s['width']}",
            f"{t['spatial_ms']:.4f}",
            fft,
            ratio,
            t["faster"],
        )
    console.print(table)
    for note in plan["notes"]:
        console.print(f"[yellow]{note}[/]")
    console.print(f"crossover (feature size from which FFT wins): {plan['crossover']}")
    console.print(f"spec: {json.dumps(result['spec'])}")
    if "export" in result:
        for art in result["export"]["artifacts"]:
            console.print(f"exported {art['format']}: {art.get('path') or art.get('error')}")


def parc_forms_command(
    model: Annotated[str, typer.Argument(help="a model with ParC layers, e.g. parcnet_s")],
    device: Device = None,
    runner: RunnerName = None,
    threads: Threads = 1,
    reloads: Annotated[int, typer.Option(help="fresh session pairs per layer shape")] = 3,
    blocks: Annotated[int, typer.Option(help="ABBA blocks per session pair")] = 6,
    export: Annotated[
        bool,
        typer.Option(help="export the model with the chosen forms (--no-export: only measure)"),
    ] = True,
    as_json: AsJson = False,
) -> None:
    """Pick ParC's faster form (spatial or FFT) per layer on a runner and record it in the spec."""
    settings = {"threads": threads, "ab_reloads": reloads, "ab_blocks": blocks}
    try:
        result = _plan(model, device, runner, settings, export)
    except LatbenchError as error:
        raise fail(error) from None
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        _print(result)
    if not result.get("export", {}).get("ok", True):
        raise typer.Exit(EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    app.command("parc-forms")(parc_forms_command)
