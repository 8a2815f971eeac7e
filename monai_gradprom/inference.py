"""Enhancing every image in a folder with a trained IP, each result written back in its input's format.

The network only ever sees channel-first [0, 1] tensors (see :mod:`monai_gradprom.io` for the per-format
mapping). Windows of ``roi_size`` go through MONAI's :class:`~monai.inferers.SlidingWindowInferer`, which also
pads images smaller than the window (replicate padding) and crops the result back, and infers the zoom of a
super-resolution network from its output, so x2 / x4 networks need nothing special.

Shapes: the network is ``len(roi_size)``-dimensional; trailing axes beyond those (the slices of a volume, the
frames of a cine) are enhanced one by one as a batch. Channels: a one-channel network enhances each channel of
a colour image on its own (colour is kept, no grey conversion); a k-channel network given a grey image sees it
repeated k times, and its output channels are averaged back to one.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from monai.inferers import Inferer, SlidingWindowInferer
from torch import nn
from tqdm import tqdm

from monai_gradprom.io import NotAnImageError, image_format, read_image, write_like
from monai_gradprom.utils import load_checkpoint_file, show_progress

__all__ = [
    "EnhanceDirectory",
    "NonFiniteImageError",
    "check_distinct_dirs",
    "enhance_array",
    "enhance_directory",
    "find_images",
    "load_enhancer_weights",
    "network_in_channels",
]

logger = logging.getLogger(__name__)

_COMPANIONS = (".raw", ".zraw")  # an MHD header's data file: written with the header, never an image of its own


def find_images(
    input_dir: str | os.PathLike, recursive: bool = True, exclude: str | os.PathLike | None = None
) -> list[Path]:
    """Supported images under ``input_dir``, sorted; other files are logged and skipped.

    Hidden files and folders (including the staging folders of an interrupted write) and everything under
    ``exclude`` (an output folder inside the input folder) are ignored, so a second run never enhances its own
    results.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input_dir is not a folder: {root}")
    excluded = Path(exclude).resolve() if exclude is not None else None
    images = []
    for path in sorted(root.rglob("*") if recursive else root.iterdir()):
        relative = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if excluded is not None and path.resolve().is_relative_to(excluded):
            continue
        if image_format(path) is not None:
            images.append(path)
        elif path.suffix.lower() not in _COMPANIONS:
            logger.info("skipping %s: not a supported image", path)
    if not images:
        raise ValueError(f"no supported image under {root} (PNG, JPEG, DICOM, NIfTI, MHD/MHA, NRRD)")
    return images


def network_in_channels(network: nn.Module) -> int | None:
    """The channels ``network`` takes: its ``in_channels`` attribute, else its first convolution's; None for a
    network without either (it is then given one channel at a time)."""
    value = getattr(network, "in_channels", None)
    if isinstance(value, int) and value > 0:
        return value
    for module in network.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            return int(module.in_channels) if module.in_channels > 0 else None
    return None


def enhance_array(
    network: nn.Module,
    array: np.ndarray,
    inferer: Inferer,
    in_channels: int | None = None,
    spatial_dims: int = 2,
    device: torch.device | str = "cpu",
    amp: bool = False,
) -> np.ndarray:
    """Run ``network`` on a channel-first [0, 1] array ``(C, *plane, *rest)`` and return ``(C, *plane', *rest)``.

    ``plane`` is the first ``spatial_dims`` spatial axes; ``rest`` (slices, frames) becomes the batch. See the
    module doc for the channel rules; ``in_channels`` defaults to :func:`network_in_channels`.
    """
    device = torch.device(device)
    channels, plane, rest = array.shape[0], array.shape[1 : 1 + spatial_dims], array.shape[1 + spatial_dims :]
    if len(plane) != spatial_dims:
        raise ValueError(f"a {spatial_dims}D network cannot enhance an image of shape {array.shape[1:]}")
    net_channels = in_channels or network_in_channels(network) or 1
    if net_channels == channels:
        batch = array[None]
    elif net_channels == 1:  # each channel on its own
        batch = array[:, None]
    elif channels == 1:  # grey image, colour network
        batch = np.repeat(array[None], net_channels, axis=1)
    else:
        raise ValueError(f"the network takes {net_channels} channels, the image has {channels}")
    units = batch.shape[0]
    rest_axes = list(range(2 + spatial_dims, batch.ndim))
    batch = np.moveaxis(batch, rest_axes, list(range(1, 1 + len(rest))))  # (units, *rest, K, *plane)
    batch = batch.reshape(units * math.prod(rest), net_channels, *plane)
    tensor = torch.as_tensor(np.ascontiguousarray(batch), dtype=torch.float32, device=device)

    was_training = network.training
    if was_training:  # eval() walks every module: skipped when the caller already switched (a whole folder)
        network.eval()
    try:
        with torch.no_grad(), torch.autocast(device.type, enabled=amp):
            out = torch.as_tensor(_infer(inferer, tensor, network)).float().clamp(0, 1).cpu().numpy()
    finally:
        if was_training:
            network.train()
    out = out.reshape(units, *rest, *out.shape[1:])  # (units, *rest, K', *plane')
    out = np.moveaxis(out, list(range(1, 1 + len(rest))), list(range(out.ndim - len(rest), out.ndim)))
    if units > 1:  # channel by channel: (C, 1, *plane', *rest)
        out = out[:, 0] if out.shape[1] == 1 else None
    elif channels == 1 and net_channels > 1:
        out = out[0].mean(axis=0, keepdims=True)
    else:
        out = out[0]
    if out is None or out.shape[0] != channels:
        raise ValueError(f"the network returned an unexpected number of channels for a {channels}-channel image")
    return np.ascontiguousarray(out)


def _infer(inferer: Inferer, tensor: torch.Tensor, network: nn.Module) -> torch.Tensor:
    """``inferer(tensor, network)``, except that a batch that is exactly one window is given to the network
    directly: the sliding window would return the same values (one window, its weights cancel) after building
    buffers and an importance map for it."""
    if (
        isinstance(inferer, SlidingWindowInferer)
        and tuple(tensor.shape[2:]) == tuple(inferer.roi_size)
        and tensor.shape[0] <= inferer.sw_batch_size
    ):
        return network(tensor)
    return inferer(tensor, network)


def check_distinct_dirs(input_dir: str | os.PathLike, output_dir: str | os.PathLike) -> None:
    """Refuse ``output_dir == input_dir`` (after resolving links and ``..``) up front, with that reason: every
    result would replace its input, and the folder walk, which skips the output folder, would otherwise report
    the confusing "no supported image"."""
    if input_dir is not None and output_dir is not None and Path(input_dir).resolve() == Path(output_dir).resolve():
        raise ValueError(
            f"input_dir and output_dir are the same folder ({Path(input_dir).resolve()}): the enhanced images "
            f"would overwrite the inputs; choose another output_dir (a sub-folder of input_dir is fine)"
        )


class NonFiniteImageError(ValueError):
    """Input images hold NaN / Inf voxels: they were not enhanced (the other images were); ``paths`` names them."""

    def __init__(self, message: str, paths: Sequence[Path] = ()) -> None:
        super().__init__(message)
        self.paths = list(paths)


def _non_finite_voxels(array: np.ndarray) -> int:
    return int(array.size - np.count_nonzero(np.isfinite(array)))


def _read_or_skip(path: Path, intensity: str):
    try:
        return read_image(path, intensity)
    except NotAnImageError as exc:
        return exc


def enhance_directory(
    network: nn.Module,
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    roi_size: Sequence[int] = (128, 128),
    sw_batch_size: int = 4,
    overlap: float = 0.25,
    upscale: int | None = 1,
    in_channels: int | None = None,
    intensity: str = "auto",
    device: torch.device | str = "cpu",
    amp: bool = False,
    recursive: bool = True,
    progress: bool | None = None,
    inferer: Inferer | None = None,
) -> list[dict]:
    """Enhance every supported image under ``input_dir`` into ``output_dir``, each in its input's format.

    Sub-folders are mirrored and names kept. ``roi_size`` sets the network's dimensionality and window; images
    larger than it are enhanced window by window (Gaussian-weighted blending of the ``overlap``), smaller ones
    are padded to it and cropped back. ``upscale``: the network's zoom, checked on every result (None: accept
    any). ``intensity``: see :func:`monai_gradprom.io.read_image`. DICOM files without pixel data (DICOMDIR,
    reports) are skipped with a warning; an undecodable file stops the run with an error naming it (outputs
    already written stay valid: every write is atomic). Returns one record per image: ``input``, ``output``,
    ``format``, ``input_shape``, ``output_shape``, ``seconds``. ``inferer``: replaces that sliding window (a
    bundle's ``inferer`` property); ``roi_size`` still sets the network's dimensionality. ``progress``: a bar
    over the images; None (default) shows it only when stderr is a terminal (``show_progress``).
    """
    root, out_root = Path(input_dir), Path(output_dir)
    check_distinct_dirs(root, out_root)
    images = find_images(root, recursive, exclude=out_root)
    spatial_dims = len(roi_size)
    device = torch.device(device)
    network = network.to(device)
    if inferer is None:
        inferer = SlidingWindowInferer(roi_size=tuple(int(r) for r in roi_size), sw_batch_size=sw_batch_size,
                                       overlap=overlap, mode="gaussian", padding_mode="replicate", device="cpu")
    records: list[dict] = []
    writes: list[tuple[dict, Future]] = []
    non_finite: list[Path] = []

    def finish(count: int) -> None:  # wait for the oldest writes (a failed write raises here)
        for record, future in writes[:count]:
            record["output"] = str(future.result())
            record["seconds"] = time.perf_counter() - record["seconds"]
            records.append(record)
        del writes[:count]

    # Reading the next image and writing the previous result overlap with the network's work (file I/O and
    # codecs release the GIL); at most two results wait to be written.
    was_training = network.training
    network.eval()
    try:
        with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
            upcoming = reader.submit(_read_or_skip, images[0], intensity) if images else None
            show = show_progress() if progress is None else progress
            for index, path in enumerate(tqdm(images, desc="enhancing", disable=not show)):
                start = time.perf_counter()
                source = upcoming.result()
                if index + 1 < len(images):
                    upcoming = reader.submit(_read_or_skip, images[index + 1], intensity)
                if isinstance(source, NotAnImageError):
                    logger.warning("skipping %s", source)
                    continue
                bad = _non_finite_voxels(source.array)
                if bad:
                    logger.warning("skipping %s: %d of its %d voxels are NaN / Inf; not enhanced", path, bad,
                                   source.array.size)
                    non_finite.append(path)
                    continue
                try:
                    result = enhance_array(network, source.array, inferer, in_channels, spatial_dims, device, amp)
                except ValueError as exc:
                    raise ValueError(f"cannot enhance {path}: {exc}") from exc
                except RuntimeError as exc:
                    raise RuntimeError(f"cannot enhance {path}: {exc}") from exc
                if _non_finite_voxels(result):
                    raise ValueError(f"cannot enhance {path}: the network's output holds NaN / Inf (the image is "
                                     "finite: check the checkpoint's weights); nothing was written for it")
                plane, new_plane = source.array.shape[1 : 1 + spatial_dims], result.shape[1 : 1 + spatial_dims]
                if upscale is not None and tuple(new_plane) != tuple(s * upscale for s in plane):
                    raise ValueError(
                        f"cannot enhance {path}: the network turned {tuple(plane)} into {tuple(new_plane)}, "
                        f"not x{upscale} (set upscale to the network's factor, or None)"
                    )
                record = {"input": str(path), "format": source.format, "input_shape": list(source.array.shape),
                          "output_shape": list(result.shape), "seconds": start}
                writes.append((record, writer.submit(write_like, result, source, out_root / path.relative_to(root))))
                finish(max(len(writes) - 2, 0))
            finish(len(writes))
    finally:
        network.train(was_training)
    if records:
        logger.info("enhanced %d image(s) from %s into %s", len(records), root, out_root)
    if non_finite:
        raise NonFiniteImageError(
            f"{len(non_finite)} image(s) under {root} hold NaN / Inf voxels and were not enhanced "
            f"({len(records)} other image(s) were): {_listing([str(p) for p in non_finite])}", non_finite)
    if not records:
        raise ValueError(f"no image under {root} could be enhanced: its DICOM files hold no pixel data")
    return records


def _listing(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def state_dict_mismatches(
    network: nn.Module, state: Mapping[str, torch.Tensor], listing: Callable[[Sequence[str]], str] | None = None
) -> list[str]:
    """How ``state`` fails to fit ``network``: ``["missing keys: ...", "unexpected keys: ...", "shape mismatches:
    ..."]`` (only the kinds that occur; empty when it loads strictly). ``listing`` formats each list of names."""
    listing = listing or _listing
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    return [f"{kind}: {listing(names)}" for kind, names in
            (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if names]


def load_enhancer_weights(
    network: nn.Module, checkpoint: str | os.PathLike, keys: Sequence[str] = ("ip_network", "network")
) -> nn.Module:
    """Load ``checkpoint`` into ``network`` strictly: a state dict, or a dict holding one under one of ``keys``
    (a training checkpoint). A DDP ``module.`` prefix is removed. A checkpoint of another architecture raises a
    ValueError naming the file and the missing, unexpected and differently shaped keys."""
    path = Path(checkpoint)
    state = load_checkpoint_file(path)
    if isinstance(state, Mapping):
        state = next((state[k] for k in keys if isinstance(state.get(k), Mapping)), state)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {path} holds no state dict (expected one, or a dict with one of {list(keys)})")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    problems = state_dict_mismatches(network, state)
    if problems:
        raise ValueError(f"checkpoint {path} does not fit the network {type(network).__name__}: "
                         + "; ".join(problems))
    network.load_state_dict(state, strict=True)
    return network


class EnhanceDirectory:
    """Bundle entry point for :func:`enhance_directory`: configure it in the bundle, call it to run.

    ``"enhancer": {"_target_": "monai_gradprom.inference.EnhanceDirectory", "network": "@network",
    "checkpoint": "@checkpoint", "input_dir": "@input_dir", "output_dir": "@output_dir"}`` with
    ``"run": "$@enhancer()"``. Nothing is read until the call, and the input folder is checked before the
    checkpoint is loaded, so a wrong path fails in seconds.
    """

    def __init__(
        self,
        network: nn.Module,
        input_dir: str | os.PathLike,
        output_dir: str | os.PathLike,
        checkpoint: str | os.PathLike | None = None,
        roi_size: Sequence[int] = (128, 128),
        sw_batch_size: int = 4,
        overlap: float = 0.25,
        upscale: int | None = 1,
        in_channels: int | None = None,
        intensity: str = "auto",
        device: torch.device | str = "cpu",
        amp: bool = False,
        recursive: bool = True,
        progress: bool | None = None,
        inferer: Inferer | None = None,
    ) -> None:
        self.network, self.checkpoint = network, checkpoint
        self.input_dir, self.output_dir = input_dir, output_dir
        self.recursive = recursive
        self.kwargs = dict(roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, overlap=overlap, upscale=upscale,
                           in_channels=in_channels, intensity=intensity, device=device, amp=amp,
                           recursive=recursive, progress=progress, inferer=inferer)

    def __call__(self) -> list[dict]:
        check_distinct_dirs(self.input_dir, self.output_dir)
        find_images(self.input_dir, self.recursive, exclude=self.output_dir)  # a bad input folder fails first
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise FileNotFoundError(
                f"checkpoint not found: {self.checkpoint} (looked for {Path(self.checkpoint).resolve()}: a relative "
                f"path is read from the folder the command runs in). Train first from this folder (the training's "
                f"output_dir is the inference's model_dir: same bundle, same --strategy / --output_dir), or pass "
                f"--model_dir <the training run's output_dir> or --checkpoint <file.pt>")
        if self.checkpoint is not None:
            load_enhancer_weights(self.network, self.checkpoint)
        return enhance_directory(self.network, self.input_dir, self.output_dir, **self.kwargs)

    def run(self) -> list[dict]:
        """The same as calling it: the engine-style entry point that MONAI tools use on a bundle's ``evaluator``."""
        return self()
