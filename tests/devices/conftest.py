"""Tiny real artifacts (a conv net exported to ONNX and to a torch.export program) for runner tests."""

from pathlib import Path

import pytest


def _tiny_net(width: int):
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, width, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(width, width, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(width, 10),
    ).eval()


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    import torch

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    torch.onnx.export(_tiny_net(16), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False)
    return path


@pytest.fixture(scope="session")
def tiny_pt2(tmp_path_factory) -> Path:
    import torch

    path = tmp_path_factory.mktemp("pt2") / "tiny.pt2"
    program = torch.export.export(_tiny_net(16), (torch.randn(1, 3, 32, 32),))
    torch.export.save(program, str(path))
    return path
