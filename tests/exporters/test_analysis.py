"""Cost analysis of models whose forward reaches a parameter through a view."""

import torch

from exporters.analysis import analyse


class LatentPool(torch.nn.Module):
    """SigLIP-style attention pool: a learned query ``latent.expand(B, ...)``. Under no_grad the
    expanded view requires grad but has no grad function, which the FLOP counter's hooks reject
    unless parameters are frozen while counting."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.latent = torch.nn.Parameter(torch.randn(1, 1, 8))
        self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.conv(x).flatten(2).transpose(1, 2)
        query = self.latent.expand(x.shape[0], -1, -1)
        return self.attn(query, tokens, tokens)[0]


def test_macs_of_a_view_of_a_parameter_are_counted_and_grad_flags_restored():
    model = LatentPool().eval()
    cost = analyse(model, torch.randn(1, 3, 8, 8))
    conv_macs = 8 * 3 * 3 * 3 * 6 * 6  # out channels x in x k x k x output positions
    assert cost.macs > conv_macs and cost.params == sum(p.numel() for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
