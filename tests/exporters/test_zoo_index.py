"""Listing the zoo and resolving a name import neither torch nor timm: timm's names come from the
shipped index (checked here against timm itself), native models from their module table."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

from exporters.zoo import native, registry, timm_models


def test_the_shipped_timm_index_is_what_timm_says():
    document = json.loads(timm_models.INDEX.read_text())
    rewrite = "rewrite it: python -m exporters.zoo.timm_models"
    assert document["timm"] == timm_models._timm_version(), rewrite
    assert timm_models.index() == timm_models.live_index(), rewrite


def test_the_native_module_table_is_what_the_modules_register():
    for module in pkgutil.iter_modules(native.__path__):
        importlib.import_module(f"{native.__name__}.{module.name}")
    assert set(registry._NATIVE) == set(native.MODULE_OF)
    for name, module in native.MODULE_OF.items():
        assert registry._NATIVE[name].builder.__module__ == f"{native.__name__}.{module}"


def test_listing_resolving_and_a_misspelt_name_import_no_torch():
    script = """
import sys
from exporters.errors import UnknownModelError
from exporters.spec import parse_spec
from exporters.zoo import list_models, resolve
assert "mobileone_s0" in list_models("mobileone*") and "parcnet_s" in list_models("parc*")
assert resolve(parse_spec("fastvit_t8")).input.height == 256
try:
    resolve(parse_spec("resnet1800"))
except UnknownModelError as error:
    assert "resnet18" in error.suggestions
print(sorted(m for m in ("torch", "timm") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
