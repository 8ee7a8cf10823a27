"""``latbench report``: the dashboard's charts as one self-contained HTML file (Plotly, the data and
the script inlined: it opens offline, in a pull request's artifact or beside a paper), and each
device's chart as PNG and SVG, drawn by that same page in headless Chromium."""

from __future__ import annotations

import base64
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from exporters.errors import LatbenchError, SpecError
from service.dashboard import view
from service.dashboard.routes import HERE, plotly_js, templates

IMAGE_FORMATS = ("png", "svg")


def render(session: Session, *, reference_csv: Path | None, devices: list[str] | None) -> str:
    """The report page for DEVICES (default: every device with a point)."""
    return page(*data(session, reference_csv=reference_csv, devices=devices))


def page(overview: view.Dashboard | dict[str, Any], per_device: dict[str, dict]) -> str:
    """The page for an overview (the dataclass, or its JSON as a server's
    /dashboard/data.json answers it) and each device's chart data."""
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
    overview.devices = chosen(devices, overview.devices)
    per_device = {
        d: view.build(session, reference_csv=reference_csv, device=d).to_json()
        for d in overview.devices
    }
    return overview, per_device


def chosen(devices: list[str] | None, with_points: list[str]) -> list[str]:
    """The devices asked for (default: every one with a point); one without points is refused
    naming those with points."""
    unknown = sorted(set(devices or []) - set(with_points))
    if unknown:
        raise SpecError(
            f"no point on {', '.join(unknown)}; devices with points: "
            f"{', '.join(with_points) or 'none yet'}",
            field="device",
        )
    return devices or with_points


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
    overview, per_device = data(session, reference_csv=reference_csv, devices=devices)
    return write_page(page(overview, per_device), list(per_device), out=out, images=images)


def write_page(html: str, devices: list[str], *, out: Path, images: bool) -> list[Path]:
    """Write the page (and each device's PNG and SVG beside it); the paths written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    written = [out]
    if images:
        for device in devices:
            for fmt in IMAGE_FORMATS:
                path = out.with_name(f"{out.stem}-{device}.{fmt}")
                path.write_bytes(image(out, device, fmt))
                written.append(path)
    return written
