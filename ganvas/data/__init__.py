"""Data: image files, paired transforms, data sets in the reference layouts, synthetic facades and streets."""

from ganvas.data.datasets import (
    CITYSCAPES_SUFFIXES,
    AlignedDataset,
    ImageDataset,
    Pix2PixHDDataset,
    SingleDataset,
    UnalignedDataset,
    collate_batch,
    label_channels,
    make_dataset,
)
from ganvas.data.io import (
    IMG_EXTENSIONS,
    find_images,
    is_image_file,
    read_image,
    read_label_map,
    save_image,
    save_label_map,
    save_uint8,
    tensor_to_uint8,
)
from ganvas.data.temporal import TemporalDataset
from ganvas.data.transforms import PREPROCESS_MODES, apply_transform, make_params, resized_size

__all__ = [
    "CITYSCAPES_SUFFIXES",
    "IMG_EXTENSIONS",
    "PREPROCESS_MODES",
    "AlignedDataset",
    "ImageDataset",
    "Pix2PixHDDataset",
    "SingleDataset",
    "TemporalDataset",
    "UnalignedDataset",
    "apply_transform",
    "collate_batch",
    "find_images",
    "is_image_file",
    "label_channels",
    "make_dataset",
    "make_params",
    "read_image",
    "read_label_map",
    "resized_size",
    "save_image",
    "save_label_map",
    "save_uint8",
    "tensor_to_uint8",
]
