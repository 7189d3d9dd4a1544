"""CycleGAN's history of generated images, which the discriminator sees instead of only the newest fakes."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ganvas.errors import DataError


class ImagePool:
    """A buffer of up to pool_size generated images (Shrivastava et al. 2017, as in CycleGAN's ImagePool).

    query(images) returns a batch of the same size. While the pool is not full, each image is stored
    and returned. Once it is full, each image is, with probability 1/2, stored in place of a random
    stored image, which is returned instead; otherwise it is returned itself. Within one batch the
    swapped images go to distinct slots (the reference draws each slot independently, so it may pick
    one twice); if more images of a batch are to be swapped than there are slots, the ones beyond
    pool_size are returned themselves. Images that fill the last free slots of a batch are stored
    first, so later images of the same batch may swap with them, as in the reference.

    The storage is one preallocated pool_size x C x H x W tensor on the images' device, made on the
    first query; all images must then have that C x H x W (a fixed crop size). The random draws come
    from a private CPU torch.Generator seeded by seed, whose few small index tensors are copied to the
    images' device: no per-image Python loop, no device-to-host synchronisation. state_dict() holds
    the stored images, their count and the generator state, so a resumed run draws the same numbers.
    """

    def __init__(self, pool_size: int = 50, seed: int = 0) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}; pass --pool_size 0 to disable the pool")
        self.pool_size = pool_size
        self.generator = torch.Generator().manual_seed(seed)
        self.images: Tensor | None = None
        self.count = 0

    def _storage_for(self, images: Tensor) -> Tensor:
        """Return the buffer, made on the first query and moved to the images' device, checking the shape."""
        if self.images is None:
            self.images = images.new_empty((self.pool_size, *images.shape[1:]))
        elif self.images.shape[1:] != images.shape[1:]:
            raise DataError(
                f"the image pool holds images of shape {tuple(self.images.shape[1:])} but got "
                f"{tuple(images.shape[1:])}; the pool needs one image size: crop to a fixed size "
                "(e.g. --preprocess resize_and_crop --crop_size 256) or pass --pool_size 0"
            )
        if self.images.device != images.device:
            self.images = self.images.to(images.device)
        return self.images

    def query(self, images: Tensor) -> Tensor:
        """Return a detached batch drawn from the new images and the pool, updating it; pool_size 0 returns images."""
        if self.pool_size == 0:
            return images
        images = images.detach()
        batch = images.shape[0]
        if batch == 0:
            return images
        storage = self._storage_for(images)
        n_fill = min(batch, self.pool_size - self.count)
        if n_fill > 0:
            storage[self.count : self.count + n_fill] = images[:n_fill]
            self.count += n_fill
        n_rest = batch - n_fill
        if n_rest == 0:
            return images
        swapped = n_fill + torch.nonzero(torch.rand(n_rest, generator=self.generator) > 0.5).flatten()
        swapped = swapped[: self.pool_size]
        if swapped.numel() == 0:
            return images
        slots = torch.randperm(self.pool_size, generator=self.generator)[: swapped.numel()]
        swapped = swapped.to(images.device, non_blocking=True)
        slots = slots.to(images.device, non_blocking=True)
        history = storage[slots]
        storage[slots] = images[swapped].to(storage.dtype)
        out = images.clone()
        out[swapped] = history.to(out.dtype)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Return the stored images, their count and the generator state, for a checkpoint."""
        return {
            "pool_size": self.pool_size,
            "count": self.count,
            "images": None if self.images is None else self.images[: self.count].clone(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() returned; a smaller pool_size keeps the first pool_size images."""
        self.generator.set_state(state["generator"])
        stored: Tensor | None = state["images"]
        self.count = min(int(state["count"]), self.pool_size)
        if stored is None or self.pool_size == 0:
            self.images, self.count = None, 0
            return
        self.images = stored.new_empty((self.pool_size, *stored.shape[1:]))
        self.images[: self.count] = stored[: self.count]
