"""Train form -> deploy form, with a proof that both compute the same function.

The fold itself is the model's own (``timm.utils.reparameterize_model`` walks ``fuse`` /
``reparameterize`` / ``switch_to_deploy``: RepVGG/MobileOne branches, FastViT's RepMixer, RepViT's
RepDW), followed by a general Conv+BatchNorm fusion for pairs no model method folds.

The proof only means something with realistic BatchNorm statistics: with the defaults (mean 0,
var 1, weight 1, bias 0) a fold that forgets the variance or the shift is invisible. So every
BatchNorm first gets calibrated, jittered statistics and random affine parameters; then both forms
run on the same random inputs, in float64, and are compared by relative error ‖a−b‖/‖a‖ (untrained
nets can reach outputs near 1e9, where an absolute error says nothing).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from exporters.errors import EquivalenceError
from exporters.exporter import relative_error

PROOF_TOLERANCE = 1e-8  # float64 proof: correct folds of the seed families land at 1e-16..1e-11
# A draw of random weights can amplify float64 rounding past PROOF_TOLERANCE (mobileone_s4 once
# proved at 9.3e-8); the tolerance then follows the draw's own amplification, up to a ceiling
# that is still far below what a wrong fold costs (a forgotten variance or shift: 1e-3..1).
# A correct fold's error over amplification × eps64 measured 0.07..12 over 12 draws of
# mobileone_s0, mobileone_s4 and repvit_m2_3 (the amplification is one noisy reading).
ROUNDING_MARGIN = 1000.0
PROOF_CEILING = 1e-5
_NUDGE = 1e-11  # relative change that measures amplification: ≫ eps64, and still linear
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
    fp32_rel_error: float | None = None  # float32 deploy form vs its exact (float64) value
    amplification: float | None = None  # measured only where the fixed tolerance was exceeded

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def randomize_batchnorm(
    model: nn.Module, input_shape: tuple[int, ...], *, seed: int = _SEED, batches: int = 2
) -> int:
    """Give every BatchNorm realistic, distinct statistics; returns how many were changed.

    Statistics are calibrated on random inputs (as training would), then jittered per channel by
    up to ×2 in variance and ±0.3σ in mean; affine parameters are randomized around the model's
    own init (zero-initialised residual branches stay small, as in trained nets). Both keep
    activations in a trained-like range: with arbitrary statistics a deep random net
    (repvit_m2_3) amplifies fp32 rounding until two correct forms differ by 10%, and the proof
    would measure chaos instead of the fold.
    """
    generator = torch.Generator().manual_seed(seed)
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
        if bn.affine:  # scaled around the model's own init, which keeps residual streams tame
            n = bn.num_features
            bn.weight.mul_(torch.rand(n, generator=generator) + 0.5)
            bn.weight.add_(torch.randn(n, generator=generator) * 0.1)
            bn.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    was_training = model.training
    model.train()
    calibration_shape = (max(4, input_shape[0]), *input_shape[1:])
    for _ in range(batches):
        model(torch.randn(*calibration_shape, generator=generator))
    model.train(was_training)
    for bn, momentum in zip(norms, momenta, strict=True):
        bn.momentum = momentum
        n = bn.num_features
        std = bn.running_var.sqrt()
        bn.running_mean.add_(torch.randn(n, generator=generator) * 0.3 * std)
        bn.running_var.mul_(torch.exp((torch.rand(n, generator=generator) - 0.5) * 1.4))
    return len(norms)


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One conv computing conv followed by bn (eval statistics)."""
    fused = copy.deepcopy(conv)
    scale = (
        bn.weight / torch.sqrt(bn.running_var + bn.eps)
        if bn.affine
        else (1.0 / torch.sqrt(bn.running_var + bn.eps))
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


class _TensorUses(TorchFunctionMode):
    """Counts, per tensor, the torch operations that compute a new tensor from it — module calls
    and bare ones alike (a residual ``x + f(x)`` is a use of ``x`` no module hook sees)."""

    def __init__(self) -> None:
        super().__init__()
        self.uses: Counter[int] = Counter()
        self.alive: list[torch.Tensor] = []  # no id is reused by another tensor during the pass

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if isinstance(result, torch.Tensor) or (
            isinstance(result, (tuple, list)) and any(isinstance(r, torch.Tensor) for r in result)
        ):
            for arg in tree_flatten((args, kwargs or {}))[0]:
                if isinstance(arg, torch.Tensor) and not isinstance(arg, nn.Parameter):
                    self.uses[id(arg)] += 1
                    self.alive.append(arg)
        return result


@torch.no_grad()
def conv_bn_pairs(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[str, str]]:
    """(conv, bn) module paths where a BatchNorm2d normalizes a Conv2d's output and nothing else
    uses that output, found by following tensors through one forward pass (no tracing needed,
    so it works on any model)."""
    produced: dict[int, str] = {}
    candidates: list[tuple[int, str]] = []
    hooks = []

    def watch(name: str, module: nn.Module) -> None:
        def hook(_m: nn.Module, args: tuple, output: object) -> None:
            if isinstance(module, nn.Conv2d) and isinstance(output, torch.Tensor):
                produced[id(output)] = name
            elif isinstance(module, nn.BatchNorm2d) and args and isinstance(args[0], torch.Tensor):
                candidates.append((id(args[0]), name))

        hooks.append(module.register_forward_hook(hook))

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.BatchNorm2d)):
            watch(name, module)
    tracker = _TensorUses()
    try:
        with tracker:
            model(torch.randn(*input_shape))
    finally:
        for handle in hooks:
            handle.remove()
    pairs = [(produced[t], bn) for t, bn in candidates if t in produced and tracker.uses[t] == 1]
    convs = Counter(conv for conv, _ in pairs)
    bns = Counter(bn for _, bn in pairs)
    return [(c, b) for c, b in pairs if convs[c] == 1 and bns[b] == 1]


def fuse_pairs(model: nn.Module, pairs: list[tuple[str, str]]) -> None:
    """Fold each (conv, bn) pair in place."""
    for conv_path, bn_path in pairs:
        bn = model.get_submodule(bn_path)
        _replace(model, conv_path, fuse_conv_bn(model.get_submodule(conv_path), bn))
        _replace(model, bn_path, _bn_without_norm(bn))


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
    tolerance: float = PROOF_TOLERANCE,
    inputs: int = 2,
    seed: int = _SEED,
) -> EquivalenceReport:
    """Run both forms on the same random inputs (in the forms' dtype); never raises."""
    generator = torch.Generator().manual_seed(seed)
    dtype = next(train.parameters()).dtype
    worst_rel, worst_abs = 0.0, 0.0
    for _ in range(inputs):
        x = torch.randn(*input_shape, generator=generator, dtype=dtype)
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


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Fold code creates tensors (identity kernels, zero biases) in the default dtype."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _proven_folds(
    train: nn.Module, input_shape: tuple[int, ...], tolerance: float
) -> tuple[list[tuple[str, str]], EquivalenceReport, nn.Module]:
    """Fold a float64 copy and compare it with the float64 train form.

    In float64 a correct fold agrees to ~1e-12 even where a random deep net amplifies fp32
    rounding into percent-level differences, so the proof separates wrong algebra from rounding.
    Where a draw amplifies even float64 rounding past ``tolerance``, the tolerance follows that
    amplification (measured, never past ``PROOF_CEILING``).
    Should latbench's own Conv+BN fusion break equivalence (a conv output also used in place
    elsewhere), it is dropped and the model's own folds alone are proven.
    """
    from timm.utils import reparameterize_model

    train64 = copy.deepcopy(train).double()
    with _default_dtype(torch.float64):
        folded64 = reparameterize_model(train64, inplace=False).eval()
        pairs = conv_bn_pairs(folded64, input_shape)
        deploy64 = copy.deepcopy(folded64)
        fuse_pairs(deploy64, pairs)
        report = check_equivalence(train64, deploy64, input_shape, tolerance=tolerance)
        amplification = _float64_amplification(train64, input_shape) if not report.ok else None
        if amplification is not None:
            rounding = ROUNDING_MARGIN * amplification * torch.finfo(torch.float64).eps
            tolerance = max(tolerance, min(PROOF_CEILING, rounding))
            report = replace(
                report,
                tolerance=tolerance,
                ok=report.rel_error <= tolerance,
                amplification=amplification,
            )
        if not report.ok and pairs:
            pairs, deploy64 = [], folded64
            report = replace(
                check_equivalence(train64, folded64, input_shape, tolerance=tolerance),
                amplification=report.amplification,
            )
    return pairs, report, deploy64


class _Nudged(TorchFunctionMode):
    """Every floating tensor an op returns, off by up to ±``_NUDGE`` relative: rounding at every
    op, made large enough to measure what the rest of the net makes of it."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.generator = generator

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not isinstance(out, torch.Tensor) or not out.is_floating_point():
            return out
        noise = torch.rand(out.shape, generator=self.generator, dtype=out.dtype) * 2 - 1
        return out * (1 + _NUDGE * noise)


@torch.no_grad()
def _float64_amplification(train64: nn.Module, input_shape: tuple[int, ...]) -> float | None:
    """Relative output change per relative change of every weight, statistic and op result: how
    much this draw of random weights amplifies the float64 rounding that a fold moves (its folded
    weights, their rounding shared by every position; its reordered sums). None where a nudged
    forward cannot run (a float that a model turns into an index): the fixed tolerance holds."""
    generator = torch.Generator().manual_seed(_SEED)
    x = torch.randn(*input_shape, generator=generator, dtype=torch.float64)
    nudged = copy.deepcopy(train64)
    for tensor in (*nudged.parameters(), *nudged.buffers()):
        if tensor.is_floating_point():
            noise = torch.rand(tensor.shape, generator=generator, dtype=torch.float64) * 2 - 1
            tensor.mul_(1 + _NUDGE * noise)
    try:
        with _Nudged(generator):
            moved = nudged(x)
    except Exception:  # noqa: BLE001 - a model's own checks may refuse a nudged value anyhow
        return None
    return relative_error(train64(x).numpy(), moved.numpy()) / _NUDGE


@torch.no_grad()
def _float32_rounding(exact: nn.Module, model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """How far float32 evaluation of this net lands from its float64 value: the yardstick for
    judging a runtime's output against PyTorch's, since random deep nets amplify rounding."""
    generator = torch.Generator().manual_seed(_SEED)
    x = torch.randn(*input_shape, generator=generator, dtype=torch.float64)
    return relative_error(exact(x).numpy(), model(x.float()).numpy())


def _amplified(report: EquivalenceReport) -> str:
    if report.amplification is None:
        return ""
    return f", this draw of random weights amplifies rounding {report.amplification:.1g}×"


def deploy_form(
    train: nn.Module, input_shape: tuple[int, ...], *, tolerance: float = PROOF_TOLERANCE
) -> tuple[nn.Module, EquivalenceReport]:
    """The single-branch inference form (float32), proven equivalent; raises EquivalenceError.

    ``train`` gets calibrated, jittered BatchNorm statistics in place (it is a throwaway build).
    The report's ``rel_error`` is the float64 proof; ``fp32_rel_error`` is how far the float32
    deploy form lands from its exact (float64) value: rounding, amplified by random weights.
    """
    from timm.utils import reparameterize_model

    randomize_batchnorm(train, input_shape)
    train.eval()
    pairs, report, exact = _proven_folds(train, input_shape, tolerance)
    if not report.ok:
        raise EquivalenceError(
            f"deploy form differs from train form: relative error {report.rel_error:.3g} > "
            f"tolerance {report.tolerance:.1g} (float64{_amplified(report)}); "
            "a reparameterization fold is wrong"
        )
    deploy = reparameterize_model(train, inplace=False).eval()
    fuse_pairs(deploy, pairs)
    return deploy, replace(
        report,
        train=form_stats(train),
        deploy=form_stats(deploy),
        generic_conv_bn_folds=len(pairs),
        fp32_rel_error=_float32_rounding(exact, deploy, input_shape),
    )
