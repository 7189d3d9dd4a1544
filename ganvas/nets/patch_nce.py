"""CUT's patch sampler: picks feature-map locations and projects them for the PatchNCE loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from ganvas.nets.norm import init_weights
from ganvas.registry import NETWORKS


def l2_normalize(x: Tensor, dim: int = 1) -> Tensor:
    """Return x divided by its L2 norm along dim, plus 1e-7 as in CUT's Normalize.

    CUT writes the norm as x.pow(2).sum().pow(1/2), whose gradient at an all-zero vector is 0 * inf =
    NaN: with narrow networks a location whose ReLU features are all zero meets the MLP's zero biases and
    poisons every weight in one step. torch's vector_norm gives the same values and a zero gradient there.
    """
    return x / (torch.linalg.vector_norm(x, dim=dim, keepdim=True) + 1e-7)


class PatchSampleF(nn.Module):
    """CUT's PatchSampleF: sample num_patches locations per feature map, project by an MLP, L2-normalise.

    Unlike CUT, which builds the MLPs lazily on the first forward, they are built here from the feature
    channel counts, so every parameter exists before the optimiser does; the state_dict keys
    (mlp_<i>.0.weight, mlp_<i>.2.weight, ...) are CUT's. With use_mlp False (CUT's netF 'sample') there
    are no parameters. init_type None leaves the MLPs as torch's layers initialise them.
    """

    def __init__(
        self,
        channels: Sequence[int],
        use_mlp: bool = True,
        nc: int = 256,
        init_type: str | None = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        self.channels = [int(c) for c in channels]
        self.use_mlp = use_mlp
        self.nc = nc
        if use_mlp:
            for index, ch in enumerate(self.channels):
                mlp = nn.Sequential(nn.Linear(ch, nc), nn.ReLU(), nn.Linear(nc, nc))
                setattr(self, f"mlp_{index}", mlp)
            if init_type is not None:  # None: the caller initialises (nets.make_network)
                init_weights(self, init_type, init_gain)

    def _check_feats(self, feats: Sequence[Tensor]) -> None:
        """Raise if feats do not match the channel counts the MLPs were built for."""
        got = [f.shape[1] for f in feats]
        if got != self.channels:
            raise ValueError(
                f"PatchSampleF was built for feature channels {self.channels} but got {got}; build it with "
                "the generator's feature_channels(nce_layers)"
            )

    def forward(
        self, feats: Sequence[Tensor], num_patches: int = 64, patch_ids: Sequence[Tensor] | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Return per feature map the (B * P) x C' unit rows at the sampled locations, and those locations.

        The same locations are used for every image of the batch (as CUT). Pass the ids returned for the
        source image's features to sample the translated image's features at the same places. Locations
        come from torch's global RNG, whose state the trainer saves. num_patches == 0 returns each whole
        map, projected and normalised per location, as B x C' x H x W, with empty ids.
        """
        if self.use_mlp:
            self._check_feats(feats)
        if patch_ids is not None and len(patch_ids) != len(feats):
            raise ValueError(f"got {len(patch_ids)} patch id tensors for {len(feats)} feature maps")
        out_feats: list[Tensor] = []
        out_ids: list[Tensor] = []
        for index, feat in enumerate(feats):
            batch, _, height, width = feat.shape
            flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # B x HW x C
            if num_patches > 0:
                if patch_ids is not None:
                    ids = torch.as_tensor(patch_ids[index], dtype=torch.long, device=feat.device)
                else:
                    ids = torch.randperm(flat.shape[1], device=feat.device)[: min(num_patches, flat.shape[1])]
                sample = flat[:, ids, :].flatten(0, 1)
            else:
                ids = torch.empty(0, dtype=torch.long, device=feat.device)
                sample = flat
            if self.use_mlp:
                sample = getattr(self, f"mlp_{index}")(sample)
            # CUT's Normalize sums over dim 1, which for the whole-map B x HW x C case is the locations;
            # normalising each location's vector (the last dim) is what the sampled case does.
            sample = l2_normalize(sample, dim=-1)
            if num_patches == 0:
                sample = sample.permute(0, 2, 1).reshape(batch, sample.shape[-1], height, width)
            out_feats.append(sample)
            out_ids.append(ids)
        return out_feats, out_ids


# Its inputs are several feature maps (`channels`), so ganvas_arch's input_nc does not apply; its output is nc wide.
@NETWORKS.register("patch_sample", kind="patch_sampler", input_nc=None, output_nc="nc")
def patch_sample(channels: list[int], use_mlp: bool = True, nc: int = 256) -> PatchSampleF:
    """CUT's patch sampler F (--netF mlp_sample: use_mlp; sample: none) for features of the given channel counts."""
    return PatchSampleF(channels, use_mlp, nc, init_type=None)
