"""The user-guided colourisation network of Zhang*, Zhu* et al. (SIGGRAPH 2017), at any width.

Input: L, hint ab and hint mask (4 channels); outputs: ab (regression head, full resolution, tanh) and
logits over quantised ab (classification head, 1/4 resolution). Downsampling takes every second pixel
and the middle layers are dilated, as in the authors' network; `ngf` 64 is their width.
`forward(x)` gives the ab only (what translate, export and the inference backends run);
`forward(x, both=True)` gives both heads. `classification` chooses which head trains the trunk: the other one learns on
detached features, as in the authors' two-stage schedule.
"""

from __future__ import annotations

from torch import Tensor, nn

from ganvas.nets.norm import get_norm_layer
from ganvas.registry import NETWORKS


def _convs(channels: list[int], norm: type[nn.Module] | None, dilation: int = 1) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels, channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, 1, dilation, dilation=dilation), nn.ReLU(True)]
    return layers + ([norm(channels[-1])] if norm is not None else [])


class SIGGRAPHGenerator(nn.Module):
    """The SIGGRAPH 2017 colourisation network (see the module docstring)."""

    size_multiple = 8

    def __init__(self, input_nc: int = 4, output_nc: int = 2, ngf: int = 64, classes: int = 529, norm: str = "batch"):
        super().__init__()
        n = get_norm_layer(norm)
        c1, c2, c3, c4 = ngf, 2 * ngf, 4 * ngf, 8 * ngf
        self.model1 = nn.Sequential(*_convs([input_nc, c1, c1], n))
        self.model2 = nn.Sequential(*_convs([c1, c2, c2], n))
        self.model3 = nn.Sequential(*_convs([c2, c3, c3, c3], n))
        self.model4 = nn.Sequential(*_convs([c3, c4, c4, c4], n))
        self.model5 = nn.Sequential(*_convs([c4, c4, c4, c4], n, dilation=2))
        self.model6 = nn.Sequential(*_convs([c4, c4, c4, c4], n, dilation=2))
        self.model7 = nn.Sequential(*_convs([c4, c4, c4, c4], n))
        self.model8up = nn.ConvTranspose2d(c4, c3, 4, 2, 1)
        self.model3short8 = nn.Conv2d(c3, c3, 3, 1, 1)
        self.model8 = nn.Sequential(nn.ReLU(True), *_convs([c3, c3, c3], n))
        self.model9up = nn.ConvTranspose2d(c3, c2, 4, 2, 1)
        self.model2short9 = nn.Conv2d(c2, c2, 3, 1, 1)
        self.model9 = nn.Sequential(nn.ReLU(True), *_convs([c2, c2], n))
        self.model10up = nn.ConvTranspose2d(c2, c2, 4, 2, 1)
        self.model1short10 = nn.Conv2d(c1, c2, 3, 1, 1)
        self.model10 = nn.Sequential(nn.ReLU(True), nn.Conv2d(c2, c2, 3, 1, 1), nn.LeakyReLU(0.2, True))
        self.model_class = nn.Conv2d(c3, classes, 1)
        self.model_out = nn.Sequential(nn.Conv2d(c2, output_nc, 1), nn.Tanh())
        self.classification = False  # a training choice (--classification), not part of the architecture

    def forward(self, x: Tensor, both: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """ab at full resolution for a 4-channel input; with `both`, (class logits at 1/4 resolution, ab)."""
        conv1 = self.model1(x)
        conv2 = self.model2(conv1[:, :, ::2, ::2])
        conv3 = self.model3(conv2[:, :, ::2, ::2])
        conv7 = self.model7(self.model6(self.model5(self.model4(conv3[:, :, ::2, ::2]))))
        conv8 = self.model8(self.model8up(conv7) + self.model3short8(conv3))
        # The head that does not train the trunk learns on detached features.
        cut = (lambda t: t.detach()) if self.classification else (lambda t: t)
        conv9 = self.model9(self.model9up(cut(conv8)) + self.model2short9(cut(conv2)))
        conv10 = self.model10(self.model10up(conv9) + self.model1short10(cut(conv1)))
        ab = self.model_out(conv10)
        if not both:
            return ab
        return self.model_class(conv8 if self.classification else conv8.detach()), ab


@NETWORKS.register("siggraph", kind="generator")
def siggraph(
    input_nc: int = 4, output_nc: int = 2, ngf: int = 64, classes: int = 529, norm: str = "batch"
) -> SIGGRAPHGenerator:
    """The user-guided colourisation network (Zhang*, Zhu* et al. 2017)."""
    return SIGGRAPHGenerator(input_nc, output_nc, ngf, classes, norm)
