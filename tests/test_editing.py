"""The scene editor: the guide's example through ganvas.load, instance_at, redo, saved scenes, the object library."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import ganvas
from ganvas.api import Translator
from ganvas.data.io import read_label_map
from ganvas.data.synthetic import STREET_CLASSES, write_street_set
from ganvas.edit import ObjectLibrary, SceneEditor, SceneObject
from ganvas.errors import DataError, OptionsError
from ganvas.models.pix2pixhd import encode_features
from ganvas.options import resolve_options
from ganvas.train import train

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "editing.md"
CAR, TREE, ROAD = (STREET_CLASSES.index(c) for c in ("car", "vegetation", "road"))
CLASSES = len(STREET_CLASSES)


def stub_model(style: str | None = None, clusters: int = 3):
    """What the editor reads of a model for everything but render(): classes, style source, clusters."""
    centres = {c: np.zeros((clusters, 3), np.float32) for c in range(CLASSES)}
    return SimpleNamespace(
        opt=SimpleNamespace(label_nc=CLASSES, name="stub"),
        label_nc=CLASSES,
        style=style,
        load_clusters=lambda: centres,
    )


@pytest.fixture(scope="module")
def street(tmp_path_factory) -> Path:
    return write_street_set(tmp_path_factory.mktemp("edit") / "s", n_train=4, n_test=1, size=(32, 64), seed=3)


def scene_maps(street: Path) -> tuple[torch.Tensor, torch.Tensor]:
    label = torch.from_numpy(read_label_map(street / "test_label" / "0000.png"))
    inst = torch.from_numpy(read_label_map(street / "test_inst" / "0000.png"))
    return label, inst


@pytest.fixture
def editor(street) -> SceneEditor:
    return SceneEditor(stub_model("inst"), *scene_maps(street), seed=5)


# ------------------------------------------------------------------------------ the guide


@pytest.fixture(scope="module")
def guide_run(tmp_path_factory) -> Path:
    """The guide's folders: datasets/synth_streets (an odd size) and checkpoints/streets, tiny and with styles."""
    root = tmp_path_factory.mktemp("guide")
    data = write_street_set(root / "datasets" / "synth_streets", n_train=8, n_test=2, size=(30, 60), seed=2)
    common = {"name": "streets", "checkpoints_dir": str(root / "checkpoints"), "dataroot": str(data), "gpu_ids": "-1"}
    opt = resolve_options(
        {
            **common,
            "model": "pix2pixhd",
            "label_nc": CLASSES,
            "ngf": 8,
            "ndf": 8,
            "n_downsample_global": 2,
            "n_blocks_global": 1,
            "num_D": 1,
            "no_vgg_loss": True,
            "preprocess": "none",
            "instance_feat": True,
            "nef": 8,
            "n_downsample_E": 2,
            "n_clusters": 3,
            "n_epochs": 1,
            "n_epochs_decay": 0,
            "num_threads": 0,
            "seed": 0,
        },
        "train",
    )
    train(opt, show_progress=False)
    encode_features(resolve_options({**common, "phase": "train"}, "test"))
    return root


def guide_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert len(blocks) == 1, "docs/editing.md should have one python example"
    return blocks[0]


def test_the_guides_example_runs_on_a_small_street_run_through_ganvas_load(guide_run, monkeypatch):
    monkeypatch.chdir(guide_run)
    exec(compile(guide_code(), str(GUIDE), "exec"), {"__name__": "editing_guide"})
    for name in ("before.png", "after.png", "my_scene/scene.json", "my_scene/maps.npz"):
        assert (guide_run / name).is_file(), name


def test_the_editor_from_ganvas_load_renders_what_the_model_renders(guide_run):
    run = guide_run / "checkpoints" / "streets"
    data = guide_run / "datasets" / "synth_streets"
    scene = ganvas.load(run).editor(data / "test_label" / "0001.png", data / "test_inst" / "0001.png", seed=1)
    again = SceneEditor(scene.model, scene.label, scene.inst, seed=1)
    assert scene.render().shape == (3, 30, 60)
    assert torch.equal(scene.render(), again.render())


def test_a_translator_without_a_run_refuses_to_edit():
    bare = Translator(
        lambda batch: batch["label"].float(),
        input_nc=1,
        output_nc=3,
        device=torch.device("cpu"),
        dtype=torch.float32,
        network=torch.nn.Identity(),
        label_nc=CLASSES,
    )
    with pytest.raises(OptionsError, match=r"needs a pix2pixHD run.*bare network file.*ganvas.load"):
        bare.editor(np.zeros((8, 8), np.uint8))


# ------------------------------------------------------------------------------ instance_at, redo


def test_instance_at_gives_the_instance_id_and_class_of_a_pixel(editor, street):
    label, inst = scene_maps(street)
    car = next(i for i in editor.instances() if i // 1000 == CAR)
    row, col = (inst == car).nonzero()[0].tolist()
    assert editor.instance_at(col, row) == (car, CAR)
    sky_row, sky_col = (inst == 0).nonzero()[0].tolist()  # stuff: the class id is its instance id
    assert editor.instance_at(sky_col, sky_row) == (0, 0)
    with pytest.raises(ValueError, match=r"\(64, 0\) is outside the 64x32 scene"):
        editor.instance_at(64, 0)


def test_redo_makes_undone_edits_again_and_a_new_edit_clears_them(editor, street):
    label, inst = scene_maps(street)
    mask = torch.zeros_like(label, dtype=torch.bool)
    mask[2:6, 3:9] = True
    assert not editor.redo()
    editor.paint(mask, ROAD)
    painted = editor.label
    new = editor.paste(mask.roll(20, dims=1), CAR)
    pasted = editor.label, editor.inst
    assert editor.undo() and editor.undo()
    assert torch.equal(editor.label, label)
    assert editor.redo()
    assert torch.equal(editor.label, painted)
    assert editor.redo() and not editor.redo()
    assert torch.equal(editor.label, pasted[0]) and torch.equal(editor.inst, pasted[1])
    assert editor.instance_at(23, 3) == (new, CAR)
    editor.undo()
    editor.paint(mask.roll(10, dims=0), TREE)  # a new edit: the undone paste cannot come back
    assert not editor.redo()
    assert editor.undo() and torch.equal(editor.label, painted)


# ------------------------------------------------------------------------------ saving scenes


def test_a_saved_scene_loads_back_with_its_maps_styles_and_seed(editor, street, tmp_path):
    label, _ = scene_maps(street)
    mask = torch.zeros_like(label, dtype=torch.bool)
    mask[20:26, 30:44] = True
    car = editor.paste(mask, CAR)
    editor.set_style(car, 2)
    folder = editor.save(tmp_path / "scene")
    assert sorted(p.name for p in folder.iterdir()) == ["maps.npz", "scene.json"]

    opened = SceneEditor.open(stub_model("inst"), folder)
    assert torch.equal(opened.label, editor.label) and torch.equal(opened.inst, editor.inst)
    assert opened.styles == {car: 2} and opened.seed == 5
    assert not opened.undo()  # a fresh history

    other = SceneEditor(stub_model("inst"), label, label.clone())
    other.paint(mask, ROAD)
    other.load(folder)
    assert torch.equal(other.inst, editor.inst) and other.styles == {car: 2} and not other.undo()
    editor.paint(mask, ROAD)
    editor.save(folder)  # saving again replaces both files
    assert torch.equal(SceneEditor.open(stub_model("inst"), folder).label, editor.label)


def test_a_scene_file_that_would_unpickle_objects_is_refused_without_running_it(editor, tmp_path):
    folder = editor.save(tmp_path / "scene")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    np.savez(folder / "maps.npz", label=np.array([Payload()], dtype=object), inst=np.zeros((2, 2), np.int64))
    with pytest.raises(DataError, match=r"maps.npz was not loaded.*would run code"):
        SceneEditor.open(stub_model("inst"), folder)
    assert not marker.exists()


def test_a_folder_without_a_scene_or_with_foreign_classes_is_refused(editor, tmp_path):
    with pytest.raises(DataError, match=r"holds no saved scene"):
        SceneEditor.open(stub_model(), tmp_path)
    folder = editor.save(tmp_path / "scene")
    small = stub_model()
    small.label_nc = 3
    with pytest.raises(DataError, match=r"holds class .* outside the model's 0 to 2"):
        SceneEditor.open(small, folder)


# ------------------------------------------------------------------------------ the object library


def test_the_object_library_cuts_every_object_of_the_training_maps_to_its_box(street):
    library = ObjectLibrary.from_dataroot(street, min_pixels=1)
    found = {}
    for path in sorted((street / "train_inst").iterdir()):
        inst = read_label_map(path)
        found.update({(path, int(i)): inst == i for i in np.unique(inst[inst >= 1000])})
    assert {(obj.source, obj.instance) for obj in library} == set(found)
    for obj in library:
        top, left, bottom, right = obj.box
        whole = found[(obj.source, obj.instance)]
        assert obj.cls == obj.instance // 1000
        assert torch.equal(obj.mask, torch.from_numpy(whole[top:bottom, left:right]))
        assert whole.sum() == obj.mask.sum()  # the box holds all of it
        assert obj.mask[0].any() and obj.mask[-1].any() and obj.mask[:, 0].any() and obj.mask[:, -1].any()
        labels = read_label_map(street / "train_label" / obj.source.name)
        assert set(np.unique(labels[whole]).tolist()) == {obj.cls}  # the label map agrees on the class
    assert {CAR, TREE} <= set(library.classes())
    cars = ObjectLibrary.from_dataroot(street, classes={CAR}, min_pixels=1)
    assert len(cars) == len(library.of_class(CAR)) > 0 and all(obj.cls == CAR for obj in cars)
    big = ObjectLibrary.from_dataroot(street, min_pixels=40)
    assert all(obj.mask.sum() >= 40 for obj in big) and len(big) < len(library)


def test_pasting_a_library_object_changes_the_maps_only_under_its_placed_mask(editor, street):
    label, inst = scene_maps(street)
    mask = torch.tensor([[0, 1, 0], [1, 1, 1]], dtype=torch.bool)
    obj = SceneObject(mask, CAR, 5000, Path("x.png"), (0, 0, 2, 3))
    new = editor.paste_object(obj, x=10, y=4, scale=2)
    placed = torch.zeros_like(label, dtype=torch.bool)
    placed[4:8, 10:16] = mask.repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert new // 1000 == CAR and new not in inst.unique().tolist()
    assert (editor.label[placed] == CAR).all() and (editor.inst[placed] == new).all()
    assert torch.equal(editor.label[~placed], label[~placed]) and torch.equal(editor.inst[~placed], inst[~placed])

    edge = editor.paste_object(obj, x=62, y=-1)  # partly outside: only the part inside is pasted
    assert set(map(tuple, (editor.inst == edge).nonzero().tolist())) == {(0, 62), (0, 63)}
    with pytest.raises(ValueError, match="outside the 64x32 scene"):
        editor.paste_object(obj, x=64, y=0)


def test_a_real_library_car_pasted_at_a_scale_keeps_its_shape(editor, street):
    car = max(ObjectLibrary.from_dataroot(street, classes={CAR}), key=lambda obj: int(obj.mask.sum()))
    new = editor.paste_object(car, x=0, y=0, scale=0.5)
    half = car.scaled(0.5)
    assert half.shape == tuple(max(1, round(side / 2)) for side in car.mask.shape)
    placed = torch.zeros_like(editor.label, dtype=torch.bool)
    placed[: half.shape[0], : half.shape[1]] = half
    assert torch.equal(editor.inst == new, placed)
    assert abs(int(half.sum()) - int(car.mask.sum()) / 4) < 0.25 * int(car.mask.sum())
