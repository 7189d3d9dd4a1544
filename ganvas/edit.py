"""Interactive editing of a pix2pixHD scene: relabel, paint, paste objects, pick styles, undo, render."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ganvas.errors import OptionsError


@dataclass
class _State:
    label: Tensor  # H x W class ids
    inst: Tensor  # H x W instance ids (class * 1000 + k for objects, the class for stuff)
    styles: dict[int, int] = field(default_factory=dict)  # instance id -> chosen style cluster


class SceneEditor:
    """One scene (label map, instance map, chosen styles) and a trained pix2pixHD model to render it.

    Every edit can be undone; `render()` runs the generator on the current maps at their resolution.
    Styles come from the clusters of `ganvas encode-features` (models trained with --instance_feat
    or --label_feat); a region without a chosen style gets one drawn from (seed, region id), so an
    edit never changes the look of the regions it does not touch.
    """

    def __init__(self, model, label: Tensor, inst: Tensor | None = None, seed: int = 0):
        if model.opt.label_nc == 0:
            raise OptionsError(
                f"the run {model.opt.name} translates images (--label_nc 0); the editor needs a model "
                f"trained on label maps"
            )
        if label.dim() != 2:
            raise ValueError(f"label must be an H x W map of class ids, got shape {tuple(label.shape)}")
        self.model = model
        self.seed = seed
        inst = label.clone() if inst is None else inst
        if inst.shape != label.shape:
            raise ValueError(f"instance map {tuple(inst.shape)} and label map {tuple(label.shape)} differ in size")
        self.state = _State(label.long().clone(), inst.long().clone())
        self.history: list[_State] = []
        self._issued: set[int] = set()

    # --- reading -----------------------------------------------------------------------------
    @property
    def label(self) -> Tensor:
        return self.state.label.clone()

    @property
    def inst(self) -> Tensor:
        return self.state.inst.clone()

    def instances(self) -> list[int]:
        """Instance ids in the scene."""
        return torch.unique(self.state.inst).tolist()

    # --- edits -------------------------------------------------------------------------------
    def _push(self) -> _State:
        self.history.append(_State(self.state.label.clone(), self.state.inst.clone(), dict(self.state.styles)))
        return self.state

    def _mask(self, mask: Tensor) -> Tensor:
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.shape != self.state.label.shape:
            raise ValueError(f"mask {tuple(mask.shape)} is not the scene's size {tuple(self.state.label.shape)}")
        return mask

    def _new_id(self, cls: int) -> int:
        """A fresh object id of class cls, never one the session has used (styles are kept by id)."""
        self._issued.update(self.instances())
        k = 1 + max((i - cls * 1000 for i in self._issued if i // 1000 == cls and i >= 1000), default=-1)
        self._issued.add(cls * 1000 + k)
        return cls * 1000 + k

    def _check_class(self, cls: int) -> int:
        if not 0 <= cls < self.model.label_nc:
            raise OptionsError(f"class {cls} is outside the model's 0 to {self.model.label_nc - 1}")
        return int(cls)

    def set_instance_label(self, instance: int, cls: int) -> int:
        """Give every pixel of one instance the class cls; returns the instance's new id."""
        cls = self._check_class(cls)
        where = self.state.inst == instance
        if not where.any():
            raise ValueError(f"no instance {instance} in the scene; see instances()")
        state = self._push()
        new = self._new_id(cls) if instance >= 1000 else cls
        state.label[where], state.inst[where] = cls, new
        if instance in state.styles:
            state.styles[new] = state.styles.pop(instance)
        return new

    def paint(self, mask: Tensor, cls: int) -> None:
        """Brush: the masked pixels become class cls, as background ('stuff') of that class."""
        cls, mask = self._check_class(cls), self._mask(mask)
        if not mask.any():
            return  # nothing painted, nothing to undo
        state = self._push()
        state.label[mask], state.inst[mask] = cls, cls

    def paste(self, mask: Tensor, cls: int) -> int:
        """Add an object of class cls covering the mask (e.g. a car or a tree); returns its instance id."""
        cls, mask = self._check_class(cls), self._mask(mask)
        if not mask.any():
            raise ValueError("the mask to paste is empty")
        new = self._new_id(cls)
        state = self._push()
        state.label[mask], state.inst[mask] = cls, new
        return new

    def set_style(self, instance: int, cluster: int) -> None:
        """Render an instance with one of its class's style clusters (a model with --label_feat styles
        whole classes: the instance's class then takes the style)."""
        if instance not in self.instances():
            raise ValueError(f"no instance {instance} in the scene; see instances()")
        cls = instance if instance < 1000 else instance // 1000
        centres = self.model.load_clusters().get(cls, []) if self.model.style else []
        if not 0 <= cluster < len(centres):
            raise ValueError(
                f"class {cls} has {len(centres)} style clusters; choose 0 to {len(centres) - 1}"
                if len(centres)
                else f"class {cls} has no style clusters in this model"
            )
        self._push().styles[cls if self.model.style == "label" else instance] = int(cluster)

    def undo(self) -> bool:
        """Take back the last edit; False when there is none."""
        if not self.history:
            return False
        self.state = self.history.pop()
        return True

    # --- rendering ---------------------------------------------------------------------------
    @torch.no_grad()
    def render(self) -> Tensor:
        """The generator's image of the current scene, 3 x H x W in [-1, 1]."""
        device = self.model.device
        batch = {
            "label": self.state.label[None, None].to(device),
            "inst": self.state.inst[None, None].to(device),
            "path": ["<scene>"],
        }
        g_input, _, regions = self.model.encode_input(batch)
        return self.model.generate(g_input, regions, None, seed=self.seed, chosen=self.state.styles)[0]
