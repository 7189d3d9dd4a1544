"""Interactive editing of a pix2pixHD scene: relabel, paint, paste objects, pick styles, undo, redo, save, render."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ganvas.checkpoint import atomic_write_many
from ganvas.data.io import find_images, read_label_map
from ganvas.errors import DataError, OptionsError
from ganvas.safe import load_json, load_npz_arrays

# A saved scene is a folder with these two files: the maps (integer arrays, no pickle) and the rest.
SCENE_MAPS = "maps.npz"
SCENE_FILE = "scene.json"
SCENE_FORMAT = "ganvas.scene"
SCENE_VERSION = 1


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
        self.future: list[_State] = []  # undone states, newest last, for redo()
        self._issued: set[int] = set()

    @classmethod
    def open(cls, model, path: str | PathLike[str]) -> SceneEditor:
        """An editor of the scene that save() wrote to the folder path, with its styles and seed."""
        label, inst, _, _ = read_scene(Path(path))
        editor = cls(model, label, inst)
        editor.load(path)
        return editor

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

    @property
    def styles(self) -> dict[int, int]:
        """The chosen style clusters: instance id (class id for --label_feat models) -> cluster."""
        return dict(self.state.styles)

    def instance_at(self, x: int, y: int) -> tuple[int, int]:
        """(instance id, class id) of the pixel in column x, row y."""
        height, width = self.state.label.shape
        if not (0 <= x < width and 0 <= y < height):
            raise ValueError(f"pixel ({x}, {y}) is outside the {width}x{height} scene; x is the column, y the row")
        return int(self.state.inst[y, x]), int(self.state.label[y, x])

    # --- edits -------------------------------------------------------------------------------
    def _push(self) -> _State:
        """Keep a copy of the scene for undo() and return the state to edit; a new edit ends what redo() could redo."""
        self.history.append(_State(self.state.label.clone(), self.state.inst.clone(), dict(self.state.styles)))
        self.future.clear()
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
        self.set_styles({instance: cluster})

    def set_styles(self, chosen: dict[int, int]) -> None:
        """set_style for several instances at once, as one edit (one undo takes them all back)."""
        keys = {}
        for instance, cluster in chosen.items():
            count = self.style_count(instance)
            cls = self.instance_class(instance)
            if not 0 <= cluster < count:
                raise ValueError(
                    f"class {cls} has {count} style clusters; choose 0 to {count - 1}"
                    if count
                    else f"class {cls} has no style clusters in this model"
                )
            keys[cls if self.model.style == "label" else instance] = int(cluster)
        if keys:
            self._push().styles.update(keys)

    @staticmethod
    def instance_class(instance: int) -> int:
        """The class of an instance id: the id of a region of stuff, id // 1000 of an object."""
        return instance if instance < 1000 else instance // 1000

    def style_count(self, instance: int) -> int:
        """How many style clusters set_style offers for an instance (those of its class; 0 without styles)."""
        if not bool((self.state.inst == instance).any()):
            raise ValueError(f"no instance {instance} in the scene; see instances()")
        cls = self.instance_class(instance)
        return len(self.model.load_clusters().get(cls, [])) if self.model.style else 0

    def paste_object(self, obj: SceneObject, x: int, y: int, scale: float = 1.0) -> int:
        """Paste a library object, scaled, with its box's top-left corner at column x, row y; returns its id.

        The parts that fall outside the scene are dropped.
        """
        mask = obj.scaled(scale)
        height, width = self.state.label.shape
        top, bottom = max(0, y), min(height, y + mask.shape[0])
        left, right = max(0, x), min(width, x + mask.shape[1])
        if top >= bottom or left >= right:
            raise ValueError(
                f"a {mask.shape[1]}x{mask.shape[0]} object at ({x}, {y}) lies outside the {width}x{height} scene"
            )
        full = torch.zeros(height, width, dtype=torch.bool)
        full[top:bottom, left:right] = mask[top - y : bottom - y, left - x : right - x]
        return self.paste(full, obj.cls)

    def undo(self) -> bool:
        """Take back the last edit; False when there is none."""
        if not self.history:
            return False
        self.future.append(self.state)
        self.state = self.history.pop()
        return True

    def redo(self) -> bool:
        """Make again the last edit undo() took back; False when there is none (a new edit clears them)."""
        if not self.future:
            return False
        self.history.append(self.state)
        self.state = self.future.pop()
        return True

    # --- files -------------------------------------------------------------------------------
    def save(self, path: str | PathLike[str]) -> Path:
        """Write the scene (label map, instance map, chosen styles, seed) to the folder path; returns it.

        The folder holds maps.npz (integer arrays) and scene.json, both replaced together.
        """
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder} is a file; save a scene to a folder (it holds {SCENE_MAPS} and {SCENE_FILE})")
        state = self.state
        description = {
            "format": SCENE_FORMAT,
            "version": SCENE_VERSION,
            "size": list(state.label.shape),
            "classes": int(self.model.label_nc),
            "seed": int(self.seed),
            "styles": {str(k): int(v) for k, v in sorted(state.styles.items())},
        }

        def write_maps(tmp: Path) -> None:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, label=state.label.cpu().numpy(), inst=state.inst.cpu().numpy())
            tmp.write_bytes(buffer.getvalue())

        def write_description(tmp: Path) -> None:
            tmp.write_text(json.dumps(description, indent=2))

        atomic_write_many([(folder / SCENE_MAPS, write_maps), (folder / SCENE_FILE, write_description)])
        return folder

    def load(self, path: str | PathLike[str]) -> None:
        """Open the scene save() wrote to the folder path, with its styles and seed; undo and redo start afresh."""
        label, inst, styles, seed = read_scene(Path(path))
        for cls in torch.unique(label).tolist():
            if not 0 <= cls < self.model.label_nc:
                raise DataError(
                    f"{Path(path) / SCENE_MAPS} holds class {cls}, outside the model's 0 to {self.model.label_nc - 1}; "
                    f"open it with the run it was made for"
                )
        # Styles of ids no longer in the maps are kept, as the editor keeps them (an undo may bring the id back).
        self.state = _State(label, inst, dict(styles))
        self.seed = seed
        self.history.clear()
        self.future.clear()
        self._issued = set(styles)  # an id with a style is never given to a new object

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


def read_scene(folder: Path) -> tuple[Tensor, Tensor, dict[int, int], int]:
    """(label map, instance map, styles, seed) of a scene folder SceneEditor.save wrote; DataError if it is not one."""
    fix = "pass a folder SceneEditor.save wrote"
    if not (folder / SCENE_FILE).is_file() or not (folder / SCENE_MAPS).is_file():
        raise DataError(f"{folder} holds no saved scene ({SCENE_FILE} and {SCENE_MAPS}); {fix}")
    description = load_json(folder / SCENE_FILE, "the scene description", fix)
    if not isinstance(description, dict) or description.get("format") != SCENE_FORMAT:
        raise DataError(f"{folder / SCENE_FILE} is not a ganvas scene description; {fix}")
    if description.get("version") != SCENE_VERSION:
        raise DataError(
            f"{folder / SCENE_FILE} is scene format version {description.get('version')}; this ganvas reads "
            f"version {SCENE_VERSION}, so update ganvas or save the scene again"
        )
    arrays = load_npz_arrays(folder / SCENE_MAPS, "the scene's maps", fix)
    maps = []
    for key in ("label", "inst"):
        array = arrays.get(key)
        if array is None or array.ndim != 2 or array.dtype.kind not in "iu":
            raise DataError(f"{folder / SCENE_MAPS} has no H x W integer array {key!r}; {fix}")
        maps.append(torch.from_numpy(array.astype(np.int64)))
    label, inst = maps
    if label.shape != inst.shape or list(label.shape) != description.get("size"):
        raise DataError(
            f"{folder / SCENE_MAPS} holds a {tuple(label.shape)} label map and a {tuple(inst.shape)} instance map "
            f"where {SCENE_FILE} says {description.get('size')}; {fix}"
        )
    try:
        styles = {int(k): int(v) for k, v in dict(description.get("styles", {})).items()}
        seed = int(description.get("seed", 0))
    except (TypeError, ValueError) as err:
        raise DataError(f"{folder / SCENE_FILE} has styles or a seed that are not integers ({err}); {fix}") from None
    return label, inst, styles, seed


# --------------------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class SceneObject:
    """One object of a data set's instance maps: its mask cut to its bounding box, and where it came from."""

    mask: Tensor  # h x w bool, the object's pixels within its box
    cls: int  # class id (instance id // 1000)
    instance: int  # its id in the source map
    source: Path  # the instance map it was taken from
    box: tuple[int, int, int, int]  # top, left, bottom, right (exclusive) in the source map

    def scaled(self, scale: float) -> Tensor:
        """The mask resized by scale (nearest neighbour), at least 1 x 1."""
        if not scale > 0:
            raise ValueError(f"scale {scale} must be positive")
        if scale == 1:
            return self.mask.clone()
        size = tuple(max(1, round(side * scale)) for side in self.mask.shape)
        resized = F.interpolate(self.mask[None, None].float(), size=size, mode="nearest-exact")
        return resized[0, 0] > 0.5


class ObjectLibrary:
    """Objects (cars, trees ...) cut from a data set's instance maps, to paste with SceneEditor.paste_object.

    Objects are the instances with ids of Cityscapes' form, class * 1000 + k; the class is id // 1000.
    """

    def __init__(self, objects: list[SceneObject]) -> None:
        self.objects = list(objects)

    @classmethod
    def from_folder(
        cls, folder: str | PathLike[str], classes: set[int] | None = None, min_pixels: int = 16
    ) -> ObjectLibrary:
        """Every object of at least min_pixels pixels in the instance maps under folder (of the given classes)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"instance map folder {folder} does not exist; objects are taken from instance maps")
        objects = []
        for path in find_images(folder):
            objects.extend(_objects_of_map(read_label_map(path), path, classes, min_pixels))
        return cls(objects)

    @classmethod
    def from_dataroot(
        cls, dataroot: str | PathLike[str], phase: str = "train", classes: set[int] | None = None, min_pixels: int = 16
    ) -> ObjectLibrary:
        """The objects of a pix2pixHD data set's <phase>_inst/ maps (the training set by default)."""
        return cls.from_folder(Path(dataroot) / f"{phase}_inst", classes, min_pixels)

    def of_class(self, cls: int) -> list[SceneObject]:
        """The objects of class cls."""
        return [obj for obj in self.objects if obj.cls == cls]

    def classes(self) -> list[int]:
        """The classes that have objects."""
        return sorted({obj.cls for obj in self.objects})

    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self) -> Iterator[SceneObject]:
        return iter(self.objects)

    def __getitem__(self, index: int) -> SceneObject:
        return self.objects[index]


def _objects_of_map(inst: np.ndarray, source: Path, classes: set[int] | None, min_pixels: int) -> list[SceneObject]:
    """The objects (ids >= 1000) of one instance map, each cut to its box."""
    found = []
    for instance in np.unique(inst[inst >= 1000]).tolist():
        cls = instance // 1000
        if classes is not None and cls not in classes:
            continue
        where = inst == instance
        if int(where.sum()) < min_pixels:
            continue
        rows, cols = np.flatnonzero(where.any(1)), np.flatnonzero(where.any(0))
        top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        mask = torch.from_numpy(where[top:bottom, left:right].copy())
        found.append(SceneObject(mask, cls, int(instance), source, (top, left, bottom, right)))
    return found
