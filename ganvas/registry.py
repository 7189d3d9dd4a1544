"""One registry for models, data layouts and networks: a name, the thing it builds and what it declares.

Modules register what they define with a decorator (as timm's `register_model`):

    @MODELS.register("pix2pix")
    class Pix2PixModel(Model): ...

    @NETWORKS.register("unet", kind="generator", pattern=r"unet_(?P<size>\\d+)", form="unet_<size>")
    def unet(input_nc, output_nc, num_downs, ngf, norm, use_dropout): ...

Help texts and error messages that list choices are generated from the entries. This module is the
bottom layer: it imports nothing of ganvas but its errors, so every layer may register.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ganvas.errors import OptionsError


@dataclass(frozen=True)
class Entry:
    """One registered thing: its name, the class or builder, and the keyword arguments it was registered with."""

    name: str
    obj: Any
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Names of one kind (models, data layouts, networks) to the classes or builders that implement them."""

    def __init__(self, kind: str, flag: str = "", provider: str = ""):
        # `provider`: the package whose import registers the built-in entries; it is imported on the
        # first look-up, so that low layers (options) can list models without importing them.
        self.kind, self.flag, self.provider = kind, flag, provider
        self._entries: dict[str, Entry] = {}

    @property
    def _all(self) -> dict[str, Entry]:
        if self.provider:
            importlib.import_module(self.provider)
        return self._entries

    def register(self, name: str, **meta: Any) -> Callable[[Any], Any]:
        """Decorator: register a class or function under `name` with declared metadata."""

        def add(obj: Any) -> Any:
            if name in self._entries and self._entries[name].obj is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice ({self._entries[name].obj} and {obj})")
            self._entries[name] = Entry(name, obj, dict(meta))
            return obj

        return add

    def unregister(self, name: str) -> Entry:
        """Remove `name` and return its entry (for tests and plug-ins that register something for a while)."""
        if name not in self._all:  # built-ins loaded first, so that a later import cannot bring `name` back
            raise KeyError(f"{self.kind} {name!r} is not registered")
        return self._entries.pop(name)

    @contextlib.contextmanager
    def scoped(self) -> Iterator[Registry]:
        """Within the block register or unregister freely; on exit the registry is as it was before.

        For tests: a model registered inside (say the template model) is not listed by later help texts.
        """
        saved = dict(self._all)  # with the built-ins: their modules are imported once and never register again
        try:
            yield self
        finally:
            self._entries.clear()
            self._entries.update(saved)

    def __contains__(self, name: object) -> bool:
        return name in self._all

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._all.values()))

    def names(self, **where: Any) -> tuple[str, ...]:
        """Registered names in registration order, optionally only those whose metadata matches `where`."""
        return tuple(e.name for e in self if all(e.meta.get(k) == v for k, v in where.items()))

    def entry(self, name: str) -> Entry:
        """The entry of `name`; OptionsError naming the closest registered name otherwise."""
        if name not in self._all:
            raise OptionsError(self.unknown(name))
        return self._all[name]

    def get(self, name: str) -> Any:
        """The class or builder registered as `name`."""
        return self.entry(name).obj

    def unknown(self, name: str, choices: tuple[str, ...] | None = None, what: str = "") -> str:
        """The sentence for an unknown name: the closest one and every choice (`what`: a flag other than `flag`)."""
        choices = choices if choices is not None else self.names()
        lowered = {c.lower(): c for c in choices}  # pix2pixHD -> pix2pixhd before closeness
        close = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.5)
        hint = f"did you mean {lowered[close[0]]}? " if close else ""
        return f"unknown {what or self.flag or self.kind} {name!r}; {hint}choose one of {', '.join(choices)}"

    def match(self, text: str, what: str = "", **where: Any) -> tuple[Entry, dict[str, str]]:
        """The entry whose name or `pattern` metadata matches `text`, and the pattern's named groups.

        `what` names the flag in the error (one registry may serve several flags, as NETWORKS --netG and --netD).
        """
        for entry in self:
            if not all(entry.meta.get(k) == v for k, v in where.items()):
                continue
            if entry.name == text and "pattern" not in entry.meta:
                return entry, {}
            found = re.fullmatch(entry.meta.get("pattern", re.escape(entry.name)), text)
            if found:
                return entry, found.groupdict()
        raise OptionsError(self.unknown(text, self.forms(**where), what))

    def forms(self, **where: Any) -> tuple[str, ...]:
        """How names are written (`unet_<size>` for a pattern entry; `form` may be a tuple of them), for help texts."""
        found: list[str] = []
        for entry in self:
            if all(entry.meta.get(k) == v for k, v in where.items()):
                form = entry.meta.get("form", entry.name)
                found.extend(form if isinstance(form, (tuple, list)) else [form])
        return tuple(found)


MODELS = Registry("model", "--model", provider="ganvas.models")
DATASETS = Registry("data layout", "--dataset_mode", provider="ganvas.data")
NETWORKS = Registry("network", provider="ganvas.nets")
# interop's key-shape readers for bare state_dict files, each named as the NETWORKS entry it proposes; tried in
# registration order, where two fit the same file the first wins.
LAYOUT_DETECTORS = Registry("layout detector", provider="ganvas.interop")
# `ganvas demo --model NAME`: each model file registers the CPU-sized demos that show it working (a
# model may have several, as CUT and FastCUT); the entry's `recipe` is a ganvas.models.base.DemoRecipe.
DEMOS = Registry("demo", "--model", provider="ganvas.models")


def build_network(name: str, **kwargs: Any) -> Any:
    """Build the network registered as `name` and record how (`net.ganvas_spec`), so that files describe it."""
    builder = NETWORKS.get(name)
    try:
        bound = inspect.signature(builder).bind(**kwargs)
    except TypeError as err:
        raise OptionsError(f"network {name!r} does not take {sorted(kwargs)} ({err})") from None
    # The spec holds the defaults too, so that a file keeps describing its network if a default changes later.
    bound.apply_defaults()
    net = builder(**copy.deepcopy(bound.arguments))
    net.ganvas_spec = {"network": name, "kwargs": copy.deepcopy(bound.arguments)}
    return net
