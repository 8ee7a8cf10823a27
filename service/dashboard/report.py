"""``latbench report``: the dashboard's charts as one self-contained HTML file (Plotly, the data and
the script inlined: it opens offline, in a pull request's artifact or beside a paper), and each
device's chart as PNG and SVG, drawn by that same page in headless Chromium."""

from __future__ import annotations

import base64
import shutil
import subprocess
import urllib.parse
from pathlib import Path

from sqlalchemy.orm import Session

from exporters.errors import LatbenchError, SpecError
from service.dashboard import view
from service.dashboard.routes import HERE, plotly_js, templates

IMAGE_FORMATS = ("png", "svg")


def render(session: Session, *, reference_csv: Path | None, devices: list[str] | None) -> str:
    """The report page for DEVICES (default: every device with a point)."""
    overview, per_device = data(session, reference_csv=reference_csv, devices=devices)
    return templates.env.get_template("dashboard.html").render(
        overview=overview,
        kinds=[k.value for k in view.Kind],
        report={
            "css": (HERE / "static" / "style.css").read_text(),
            "plotly": plotly_js(),
            "script": (HERE / "static" / "dashboard.js").read_text(),
            "data": per_device,
        },
    )


def data(
    session: Session, *, reference_csv: Path | None, devices: list[str] | None
) -> tuple[view.Dashboard, dict[str, dict]]:
    """The overview and each device's chart data (what the page draws; `latbench report
    --json` prints it); an unknown device names the ones with points."""
    overview = view.build(session, reference_csv=reference_csv)
    unknown = sorted(set(devices or []) - set(overview.devices))
    if unknown:
        raise SpecError(
            f"no point on {', '.join(unknown)}; devices with points: "
            f"{', '.join(overview.devices) or 'none yet'}",
            field="device",
        )
    overview.devices = devices or overview.devices
    per_device = {
        d: view.build(session, reference_csv=reference_csv, device=d).to_json()
        for d in overview.devices
    }
    return overview, per_device


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise LatbenchError(
            "PNG/SVG need headless Chromium (apt-get install chromium); the HTML report has "
            "PNG/SVG buttons too"
        )
    return found


def image(page: Path, device: str, fmt: str) -> bytes:
    """The chart of DEVICE as PNG or SVG: the page draws it and writes Plotly's image into the
    DOM (``#device=…&export=…``), which headless Chromium prints."""
    fragment = urllib.parse.urlencode({"device": device, "export": fmt})
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # root in a container has no user namespace to sandbox into
        "--disable-gpu",
        "--virtual-time-budget=30000",  # let the page's asynchronous drawing finish
        "--dump-dom",
        f"{page.resolve().as_uri()}#{fragment}",
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=180)
    marker = 'id="export">'
    if marker not in done.stdout:
        raise LatbenchError(f"Chromium drew no {fmt} for {device}: {done.stderr[-500:]}")
    url = done.stdout.split(marker, 1)[1].split("<", 1)[0].strip()
    header, _, payload = url.partition(",")
    if header.endswith(";base64"):
        return base64.b64decode(payload)
    return urllib.parse.unquote(payload).encode()


def write(
    session: Session,
    *,
    reference_csv: Path | None,
    devices: list[str] | None,
    out: Path,
    images: bool,
) -> list[Path]:
    """Write the HTML (and each device's PNG and SVG beside it); the paths written."""
    html = render(session, reference_csv=reference_csv, devices=devices)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    written = [out]
    if images:
        for device in devices or view.build(session, reference_csv=reference_csv).devices:
            for fmt in IMAGE_FORMATS:
                path = out.with_name(f"{out.stem}-{device}.{fmt}")
                path.write_bytes(image(out, device, fmt))
                written.append(path)
    return written
