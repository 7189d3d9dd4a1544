"""Data: image files, paired transforms, data sets in the reference layouts, synthetic facades."""

from ganvas.data.datasets import (
    DATASET_MODES,
    AlignedDataset,
    ImageDataset,
    SingleDataset,
    UnalignedDataset,
    collate_batch,
    make_dataset,
)
from ganvas.data.io import (
    IMG_EXTENSIONS,
    find_images,
    is_image_file,
    read_image,
    save_image,
    save_uint8,
    tensor_to_uint8,
)
from ganvas.data.transforms import PREPROCESS_MODES, apply_transform, make_params, resized_size

__all__ = [
    "DATASET_MODES",
    "IMG_EXTENSIONS",
    "PREPROCESS_MODES",
    "AlignedDataset",
    "ImageDataset",
    "SingleDataset",
    "UnalignedDataset",
    "apply_transform",
    "collate_batch",
    "find_images",
    "is_image_file",
    "make_dataset",
    "make_params",
    "read_image",
    "resized_size",
    "save_image",
    "save_uint8",
    "tensor_to_uint8",
]
