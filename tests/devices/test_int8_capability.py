"""The CPU's int8 capability, read from /proc/cpuinfo flags as the OS states them, and the note
a quantized result carries where no int8 dot-product instruction exists."""

from __future__ import annotations

import pytest

from devices import conditions
from devices.conditions import int8_capability, int8_note


@pytest.mark.parametrize(
    ("machine", "line", "found"),
    [
        ("x86_64", "flags\t\t: fpu sse4_2 avx2 fma", []),
        ("x86_64", "flags\t\t: fpu avx2 avx512f avx512_vnni amx_tile amx_int8", ["avx512_vnni", "amx_int8"]),
        ("aarch64", "Features\t: fp asimd evtstrm crc32", []),
        ("aarch64", "Features\t: fp asimd asimddp sve i8mm", ["asimddp", "i8mm"]),
    ],
)  # fmt: skip
def test_capability_comes_from_the_flags(tmp_path, monkeypatch, machine, line, found):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\n{line}\n\nprocessor\t: 1\n{line}\n")
    monkeypatch.setattr(conditions, "CPUINFO", cpuinfo)
    monkeypatch.setattr(conditions.platform, "machine", lambda: machine)
    reading = int8_capability()
    assert reading["value"] == found and reading["dot_product"] is bool(found)
    assert reading["source"] == "/proc/cpuinfo flags"
    note = int8_note(reading)
    assert (note is None) is bool(found)
    if note:
        assert "without int8 dot-product instructions" in note


def test_every_result_carries_it():
    taken = conditions.conditions({}, {})
    assert "dot_product" in taken["int8_capability"] or "unavailable" in taken["int8_capability"]
