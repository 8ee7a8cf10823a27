"""Every timm model as a zoo entry, built with ``pretrained=False``.

Overrides go through a per-family allow-list of architecture knobs (the keyword arguments of each
family's constructor that change the graph). Loader arguments (``pretrained``, ``checkpoint_path``,
``pretrained_cfg``, ``pretrained_cfg_overlay``, ...) are on no list, so a spec can never make timm
read a file or fetch weights.

Listing and resolving names reads ``timm_index.json`` (every name, its input size, whether the
size is fixed) when it was written for the installed timm, so ``latbench models`` and a misspelt
name answer without importing torch and timm (seconds); ``python -m exporters.zoo.timm_models``
rewrites it after a timm upgrade, and timm itself is asked until then.
"""

from __future__ import annotations

import json
from functools import cache, partial
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Interval, Len

from exporters.zoo.entry import ModelEntry

Depth = Annotated[int, Interval(ge=1, le=32)]
Width = Annotated[int, Interval(ge=8, le=2048)]
Ratio = Annotated[float, Interval(ge=0.25, le=8.0)]
OddKernel = Literal[1, 3, 5, 7, 9, 11]
Stages4 = Len(4, 4)

COMMON_KNOBS: dict[str, Any] = {"num_classes": Annotated[int, Interval(ge=1, le=100_000)]}

# family -> (model-name prefixes, architecture knobs beyond COMMON_KNOBS)
FAMILIES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "fastvit": (
        ("fastvit_",),
        {
            "layers": Annotated[tuple[Depth, ...], Stages4],
            "embed_dims": Annotated[tuple[Width, ...], Stages4],
            "mlp_ratios": Annotated[tuple[Ratio, ...], Stages4],
            "token_mixers": Annotated[tuple[Literal["repmixer", "attention"], ...], Stages4],
            "repmixer_kernel_size": OddKernel,
            "down_patch_size": OddKernel,
        },
    ),
    "repvit": (
        ("repvit_",),
        {
            "embed_dim": Annotated[tuple[Width, ...], Len(1, 6)],
            "depth": Annotated[tuple[Depth, ...], Len(1, 6)],
            "mlp_ratio": Ratio,
            "kernel_size": OddKernel,
        },
    ),
    "fasternet": (
        ("fasternet_",),
        {
            "embed_dim": Width,
            "depths": Annotated[tuple[Depth, ...], Stages4],
            "mlp_ratio": Ratio,
            "n_div": Annotated[int, Interval(ge=1, le=16)],
        },
    ),
    "efficientformer": (
        ("efficientformer_l",),
        {
            "depths": Annotated[tuple[Depth, ...], Stages4],
            "embed_dims": Annotated[tuple[Width, ...], Stages4],
            "num_vit": Annotated[int, Interval(ge=0, le=8)],
        },
    ),
    "efficientformerv2": (
        ("efficientformerv2_",),
        {
            "depths": Annotated[tuple[Depth, ...], Stages4],
            "embed_dims": Annotated[tuple[Width, ...], Stages4],
        },
    ),
    "mobilevit": (("mobilevit_",), {}),
    # MobileViTv2's variants are one width multiplier (0.5 to 2.0) of one layout
    "mobilevitv2": (
        ("mobilevitv2_",),
        {"width_multiplier": Annotated[float, Interval(ge=0.25, le=4.0)]},
    ),
    # MobileOne's variants (S0-S4) differ in per-stage width multipliers and k, the number of
    # over-parameterized branches folded away at deploy time (S0: k=4, others 1)
    "mobileone": (
        ("mobileone_",),
        {
            "width_multipliers": Annotated[tuple[Ratio, ...], Stages4],
            "num_conv_branches": Annotated[int, Interval(ge=1, le=8)],
        },
    ),
    "levit": (("levit_",), {}),
    "edgenext": (("edgenext_",), {}),
    "mobilenetv2": (("mobilenetv2_",), {}),
    "mobilenetv3": (("mobilenetv3_", "tf_mobilenetv3_"), {}),
    "mobilenetv4": (("mobilenetv4_",), {}),
    "efficientnet": (("efficientnet_", "tf_efficientnet_"), {}),
    "convnext": (("convnext_",), {}),
    "resnet": (("resnet",), {}),
}


def family_of(name: str) -> tuple[str, dict[str, Any]]:
    """Longest matching prefix wins (``mobilevitv2_`` before ``mobilevit_``)."""
    best: tuple[int, str, dict[str, Any]] | None = None
    for family, (prefixes, knobs) in FAMILIES.items():
        for prefix in prefixes:
            if name.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), family, knobs)
    if best is None:
        return name.split("_")[0], {}
    return best[1], best[2]


INDEX = Path(__file__).with_name("timm_index.json")
Sizes = dict[str, tuple[tuple[int, int, int], bool]]  # name -> ((C, H, W), fixed input size)


def live_index() -> Sizes:
    """Every timm model's input size, asked of timm itself (imports torch)."""
    import timm
    from timm.models import get_pretrained_cfg

    sizes: Sizes = {}
    for name in timm.list_models():
        cfg = get_pretrained_cfg(name)
        shape = tuple(cfg.input_size) if cfg is not None else (3, 224, 224)
        sizes[name] = (shape, bool(cfg is not None and cfg.fixed_input_size))  # type: ignore[assignment]
    return sizes


@cache
def index() -> Sizes:
    """The shipped index when it matches the installed timm, else ``live_index()``."""
    if INDEX.is_file():
        document = json.loads(INDEX.read_text())
        if document["timm"] == _timm_version():
            return {n: (tuple(v[:3]), bool(v[3])) for n, v in document["models"].items()}  # type: ignore[misc]
    return live_index()


def write_index(path: Path = INDEX) -> None:
    models = {name: [*shape, int(fixed)] for name, (shape, fixed) in live_index().items()}
    document = {"timm": _timm_version(), "models": models}
    path.write_text(json.dumps(document, separators=(",", ":"), sort_keys=True) + "\n")


def list_names() -> tuple[str, ...]:
    return tuple(index())


def _create(name: str, **kwargs: Any) -> Any:
    import timm

    return timm.create_model(name, pretrained=False, **kwargs)


def _create_mobileone(
    name: str,
    width_multipliers: tuple[float, ...] | None = None,
    num_conv_branches: int | None = None,
    **kwargs: Any,
) -> Any:
    """The variant's stage config rebuilt by timm's own ``_mobileone_bcfg`` with the knobs
    given, every other value (the variant's widths, k, SE blocks) kept."""
    if width_multipliers is not None or num_conv_branches is not None:
        from timm.models.byobnet import _mobileone_bcfg, model_cfgs

        stages = model_cfgs[name].blocks
        base = (64, 128, 256, 512)  # _mobileone_bcfg's stage channels before the multipliers
        widths = width_multipliers or tuple(s[-1].c / c for s, c in zip(stages, base, strict=True))
        branches = num_conv_branches or stages[0][0].block_kwargs["num_conv_branches"]
        se_blocks = tuple(sum(b.attn_layer == "se" for b in stage[::2]) for stage in stages)
        kwargs["blocks"] = _mobileone_bcfg(
            wf=tuple(widths), se_blocks=se_blocks, num_conv_branches=branches
        )
        kwargs["stem_chs"] = int(min(64, base[0] * widths[0]))  # what the first stage takes
    return _create(name, **kwargs)


def _create_mobilevitv2(name: str, width_multiplier: float | None = None, **kwargs: Any) -> Any:
    """MobileViTv2 at another width multiplier: timm's own config function for the family."""
    if width_multiplier is not None:
        import dataclasses

        from timm.models.mobilevit import _mobilevitv2_cfg

        cfg = _mobilevitv2_cfg(width_multiplier)
        kwargs.update({f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)})
    return _create(name, **kwargs)


# families whose knobs are not constructor arguments: a builder that turns them into timm's config
BUILDERS: dict[str, Any] = {"mobileone": _create_mobileone, "mobilevitv2": _create_mobilevitv2}


@cache
def entry_for(name: str) -> ModelEntry | None:
    if name not in index():
        return None
    input_size, fixed = index()[name]
    family, knobs = family_of(name)
    return ModelEntry(
        name=name,
        family=family,
        builder=partial(BUILDERS.get(family, _create), name),
        input_size=input_size,
        knobs={**COMMON_KNOBS, **knobs},
        source=f"timm {_timm_version()} ({name})",
        img_size_arg=fixed,
    )


def _timm_version() -> str:
    from importlib import metadata

    return metadata.version("timm")


if __name__ == "__main__":
    write_index()
