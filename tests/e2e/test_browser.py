"""The dashboard in a real browser: `latbench serve` measures two zoo models and one user spec on
this CPU, the user attaches an accuracy with `latbench accuracy set`, and headless Chromium
(Debian's, driven by Selenium through chromium-driver) checks the chart holds them, the listed
frontier is the Pareto set computed here from the results, switches device, clicks through to the
model page and saves a screenshot."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import NamedTuple

import pytest

from service import reference
from service.dashboard.pareto import frontier
from tests.e2e.conftest import FAST, LATBENCH, Server, service_env
from tests.service.backends import unavailable

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ZOO = ("mobileone_s0", "fasternet_t0")  # small, with a published top-1 at their default input
CUSTOM = {"model": "mobileone_s0", "input": {"height": 128, "width": 128}, "formats": ["onnx"]}


class Point(NamedTuple):
    label: str
    latency_ms: float
    top1: float


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and DRIVER):
        unavailable("needs Debian's chromium and chromium-driver (apt-get install chromium)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,2200"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def measure(server: Server, model) -> dict:
    body = {"model": model, "formats": ["onnx"], "settings": FAST}
    accepted = server.http.post("/profile", json=body)
    assert accepted.status_code == 202, accepted.text
    job = server.wait_job(accepted.json()["jobs"][0]["id"], timeout=400)
    assert job["state"] == "done", job["error"]
    return job


def wait_ready(driver, device: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.body.dataset.ready") == device
    )


def traces(driver) -> dict[str, set[str]]:
    script = "return document.getElementById('scatter').data.map(t => [t.name, t.text || []])"
    return {name: {t for t in text if t} for name, text in driver.execute_script(script)}


def test_dashboard_in_chromium(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server = Server(service_env(tmp_path), tmp_path / "server.log")
    try:
        measured = {model: measure(server, model) for model in ZOO}
        custom = measure(server, CUSTOM)
        spec_file = tmp_path / "custom.json"
        spec_file.write_text(json.dumps(CUSTOM))
        attach = subprocess.run(
            [LATBENCH, "accuracy", "set", str(spec_file), "--top1", "65.0", "--source", "run 7"]
            + ["--resolution", "128", "--server", server.url],
            env=service_env(tmp_path),
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert attach.returncode == 0, attach.stderr
        assert json.loads(attach.stdout)["subject"] == custom["spec_hash"]

        # the Pareto set of these three points, computed here from the stored results
        refs = reference.load()
        custom_label = f"mobileone_s0 [{custom['spec_hash'][:6]}]"
        points = [
            Point(model, job["result"]["latency_ms"]["median"], refs[model].top1)
            for model, job in measured.items()
        ] + [Point(custom_label, custom["result"]["latency_ms"]["median"], 65.0)]

        expected_front = [p.label for p in frontier(points)]

        browser.get(f"{server.url}/dashboard")
        wait_ready(browser, "cpu-x86_64")
        shown = traces(browser)
        assert shown["measured"] == set(ZOO)
        assert shown["user"] == {custom_label}
        listed = browser.find_elements(By.CSS_SELECTOR, "#frontier-list li")
        assert [li.get_attribute("data-model") for li in listed] == expected_front
        browser.find_element(By.ID, "logx").click()
        WebDriverWait(browser, 30).until(
            lambda d: (
                d.execute_script("return document.getElementById('scatter').layout.xaxis.type")
                == "log"
            )
        )
        browser.save_screenshot(str(tmp_path / "dashboard.png"))

        Select(browser.find_element(By.ID, "device")).select_by_value("iphone12-class")
        wait_ready(browser, "iphone12-class")
        phone = traces(browser)
        assert phone["measured"] == set() and phone["user"] == set()
        names = browser.execute_script(
            "return document.getElementById('scatter').data.find(t => t.name == 'published')"
            ".customdata"
        )
        assert "published:mobileone_s0:iphone12-class" in names

        Select(browser.find_element(By.ID, "device")).select_by_value("cpu-x86_64")
        wait_ready(browser, "cpu-x86_64")
        browser.find_element(By.LINK_TEXT, "fasternet_t0").click()
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "model-title"))
        assert "fasternet_t0" in browser.find_element(By.ID, "model-title").text
        assert "rel_error" in browser.find_element(By.ID, "reparam").text
        assert "71.9% published" in browser.find_element(By.ID, "accuracy").text
        history = browser.find_element(By.ID, "history").text
        assert measured["fasternet_t0"]["id"] in history
        browser.save_screenshot(str(tmp_path / "model.png"))
    finally:
        server.stop()
