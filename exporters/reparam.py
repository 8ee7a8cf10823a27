"""Train form -> deploy form, with a proof that both compute the same function.

The fold itself is the model's own (``timm.utils.reparameterize_model`` walks ``fuse`` /
``reparameterize`` / ``switch_to_deploy``: RepVGG/MobileOne branches, FastViT's RepMixer, RepViT's
RepDW), followed by a general Conv+BatchNorm fusion for pairs no model method folds.

The proof only means something with realistic BatchNorm statistics: with the defaults (mean 0,
var 1, weight 1, bias 0) a fold that forgets the variance or the shift is invisible. So every
BatchNorm first gets random non-trivial statistics and affine parameters, then both forms run on
the same random inputs and are compared by relative error: untrained nets can reach outputs near
1e9, where an absolute error says nothing.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from exporters.errors import EquivalenceError
from exporters.exporter import relative_error

DEFAULT_TOLERANCE = 1e-4  # fp32 folds measured here stay below ~1e-5 (see tests/exporters)
_SEED = 20261123


@dataclass(frozen=True)
class FormStats:
    params: int
    leaf_modules: int
    batchnorms: int
    convs: int


@dataclass(frozen=True)
class EquivalenceReport:
    rel_error: float
    max_abs_error: float
    tolerance: float
    ok: bool
    inputs: int
    train: FormStats
    deploy: FormStats
    generic_conv_bn_folds: int = 0  # pairs folded by latbench beyond the model's own methods

    def to_dict(self) -> dict:
        return asdict(self)


def randomize_batchnorm(model: nn.Module, *, seed: int = _SEED) -> int:
    """Give every BatchNorm realistic, distinct statistics; returns how many were changed."""
    generator = torch.Generator().manual_seed(seed)
    changed = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            n = module.num_features
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.25)
                if module.affine:
                    module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                    module.bias.copy_(torch.randn(n, generator=generator) * 0.2)
            changed += 1
    return changed


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One conv computing conv followed by bn (eval statistics)."""
    fused = copy.deepcopy(conv)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else (
        1.0 / torch.sqrt(bn.running_var + bn.eps)
    )
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias = nn.Parameter((bias - bn.running_mean) * scale + shift)
    return fused


def _replace(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def _bn_without_norm(bn: nn.Module) -> nn.Module:
    """What is left of a BatchNorm once folded: nothing, or timm's fused drop + activation."""
    from timm.layers import BatchNormAct2d

    return nn.Sequential(bn.drop, bn.act) if isinstance(bn, BatchNormAct2d) else nn.Identity()


@torch.no_grad()
def conv_bn_pairs(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[str, str]]:
    """(conv, bn) module paths where the BatchNorm's input is a Conv2d's output and nothing else
    consumes it, found by following tensors through one forward pass (no tracing needed, so it
    works on any model)."""
    produced: dict[int, str] = {}
    consumers: Counter[int] = Counter()
    candidates: list[tuple[int, str]] = []
    alive: list[torch.Tensor] = []  # no id is reused by another tensor during the pass
    hooks = []

    def watch(name: str, module: nn.Module) -> None:
        def hook(_m: nn.Module, args: tuple, output: object) -> None:
            for arg in args:
                if isinstance(arg, torch.Tensor):
                    consumers[id(arg)] += 1
                    alive.append(arg)
            if isinstance(module, nn.Conv2d) and isinstance(output, torch.Tensor):
                produced[id(output)] = name
                alive.append(output)
            if isinstance(module, nn.BatchNorm2d) and args and isinstance(args[0], torch.Tensor):
                candidates.append((id(args[0]), name))

        hooks.append(module.register_forward_hook(hook))

    for name, module in model.named_modules():
        if name and (not list(module.children()) or isinstance(module, nn.BatchNorm2d)):
            watch(name, module)
    try:
        model(torch.randn(*input_shape))
    finally:
        for handle in hooks:
            handle.remove()
    pairs = [(produced[t], bn) for t, bn in candidates if t in produced and consumers[t] == 1]
    convs = Counter(conv for conv, _ in pairs)
    bns = Counter(bn for _, bn in pairs)
    return [(c, b) for c, b in pairs if convs[c] == 1 and bns[b] == 1]


def fuse_remaining_conv_bn(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Fold every Conv2d→BatchNorm2d pair no model method folded; returns how many."""
    pairs = conv_bn_pairs(model, input_shape)
    for conv_path, bn_path in pairs:
        bn = model.get_submodule(bn_path)
        _replace(model, conv_path, fuse_conv_bn(model.get_submodule(conv_path), bn))
        _replace(model, bn_path, _bn_without_norm(bn))
    return len(pairs)


def form_stats(model: nn.Module) -> FormStats:
    modules = list(model.modules())
    return FormStats(
        params=sum(p.numel() for p in model.parameters()),
        leaf_modules=sum(
            1 for m in modules if not list(m.children()) and not isinstance(m, nn.Identity)
        ),
        batchnorms=sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules),
        convs=sum(isinstance(m, nn.modules.conv._ConvNd) for m in modules),
    )


@torch.no_grad()
def check_equivalence(
    train: nn.Module,
    deploy: nn.Module,
    input_shape: tuple[int, ...],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    inputs: int = 2,
    seed: int = _SEED,
) -> EquivalenceReport:
    """Run both forms on the same random inputs; never raises, the caller decides."""
    generator = torch.Generator().manual_seed(seed)
    worst_rel, worst_abs = 0.0, 0.0
    for _ in range(inputs):
        x = torch.randn(*input_shape, generator=generator)
        a, b = train(x), deploy(x)
        worst_rel = max(worst_rel, relative_error(a.numpy(), b.numpy()))
        worst_abs = max(worst_abs, float((a - b).abs().max()))
    return EquivalenceReport(
        rel_error=worst_rel,
        max_abs_error=worst_abs,
        tolerance=tolerance,
        ok=worst_rel <= tolerance,
        inputs=inputs,
        train=form_stats(train),
        deploy=form_stats(deploy),
    )


def deploy_form(
    train: nn.Module, input_shape: tuple[int, ...], *, tolerance: float = DEFAULT_TOLERANCE
) -> tuple[nn.Module, EquivalenceReport]:
    """The single-branch inference form, proven equivalent; raises EquivalenceError otherwise.

    ``train`` gets randomized BatchNorm statistics in place (it is a throwaway build). Should the
    general Conv+BN fusion ever break equivalence (a conv output also used in place elsewhere),
    it is undone and the model's own folds alone are kept, so the proof never blocks a model
    that timm folds correctly.
    """
    from timm.utils import reparameterize_model

    train.eval()
    randomize_batchnorm(train)
    folded_by_model = reparameterize_model(train, inplace=False).eval()
    deploy = copy.deepcopy(folded_by_model)
    generic_folds = fuse_remaining_conv_bn(deploy, input_shape)
    report = check_equivalence(train, deploy, input_shape, tolerance=tolerance)
    if not report.ok and generic_folds:
        deploy, generic_folds = folded_by_model, 0
        report = check_equivalence(train, deploy, input_shape, tolerance=tolerance)
    if not report.ok:
        raise EquivalenceError(
            f"deploy form differs from train form: relative error {report.rel_error:.3g} > "
            f"tolerance {tolerance:.1g}; a reparameterization fold is wrong"
        )
    return deploy, replace(report, generic_conv_bn_folds=generic_folds)
