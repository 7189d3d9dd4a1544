"""ganvas: image-to-image translation with GANs on PyTorch."""

__version__ = "0.1.0"
