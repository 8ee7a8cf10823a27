from __future__ import annotations

import threading
import time

import pytest

from devices.jobs.lock import host_lock
from devices.settings import MeasureSettings
from exporters.errors import SpecError
from exporters.formats import DeviceClass, ExportFormat
from service import pipeline


def test_plan_picks_each_device_preferred_format_and_precision():
    plan = pipeline.plan("mobileone_s0", [DeviceClass.CPU_X86_64, DeviceClass.IPHONE12_CLASS], None)
    assert [(t.device_class, t.format, t.precision) for t in plan.targets] == [
        (DeviceClass.CPU_X86_64, ExportFormat.ONNX, "fp32"),
        (DeviceClass.IPHONE12_CLASS, ExportFormat.COREML, "fp16"),
    ]
    assert plan.family == "mobileone" and len(plan.spec_hash) == 32


def test_plan_refuses_formats_a_device_cannot_run():
    with pytest.raises(SpecError) as info:
        pipeline.plan("mobileone_s0", [DeviceClass.IPHONE12_CLASS], [ExportFormat.ONNX])
    assert info.value.field == "formats"


def test_request_key_changes_with_settings_and_target():
    plan = pipeline.plan("mobileone_s0", [DeviceClass.CPU_X86_64, DeviceClass.CPU_ARM64], None)
    x86, arm = plan.targets
    key = pipeline.request_key(spec_hash=plan.spec_hash, target=x86, settings=MeasureSettings())
    assert key == pipeline.request_key(
        spec_hash=plan.spec_hash, target=x86, settings=MeasureSettings()
    )
    assert key != pipeline.request_key(
        spec_hash=plan.spec_hash, target=arm, settings=MeasureSettings()
    )
    assert key != pipeline.request_key(
        spec_hash=plan.spec_hash, target=x86, settings=MeasureSettings(threads=2)
    )


def test_export_waits_while_a_measurement_holds_the_host(tmp_path):
    lock = tmp_path / "host.lock"
    events: list[str] = []

    def export_side() -> None:
        with host_lock(lock, exclusive=False):
            events.append("export")

    with host_lock(lock, exclusive=True):
        thread = threading.Thread(target=export_side)
        thread.start()
        time.sleep(0.3)
        events.append("measurement done")
    thread.join(timeout=5)
    assert events == ["measurement done", "export"]


def test_exports_share_the_host_with_each_other(tmp_path):
    lock = tmp_path / "host.lock"
    with host_lock(lock, exclusive=False):
        done = threading.Event()

        def other_export() -> None:
            with host_lock(lock, exclusive=False):
                done.set()

        threading.Thread(target=other_export).start()
        assert done.wait(timeout=5)
