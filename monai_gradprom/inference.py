"""Enhancing every image in a folder with a trained IP, written back in each input's format."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from torch import nn
from tqdm import tqdm

from monai_gradprom.engines.pretrain import load_network_weights
from monai_gradprom.io import image_format, read_image, write_like

__all__ = ["enhance_array", "enhance_directory", "EnhanceDirectory", "find_images"]

logger = logging.getLogger(__name__)


def find_images(input_dir: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Supported images under ``input_dir`` (an ``.mhd``'s ``.raw`` companion is not an image of its own)."""
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input_dir is not a folder: {root}")
    files = sorted(p for p in (root.rglob("*") if recursive else root.iterdir()) if p.is_file())
    images = [p for p in files if image_format(p) is not None]
    skipped = [p for p in files if p not in images and p.suffix.lower() != ".raw"]
    for path in skipped:
        logger.info("skipping %s: not a supported image", path)
    if not images:
        raise ValueError(f"no supported image under {root} (PNG, JPEG, DICOM, NIfTI, MHD/MHA, NRRD)")
    return images


def enhance_array(
    network: nn.Module,
    array: np.ndarray,
    inferer: SlidingWindowInferer,
    in_channels: int = 1,
    spatial_dims: int = 2,
    device: torch.device | str = "cpu",
    amp: bool = False,
) -> np.ndarray:
    """Run ``network`` on a channel-first [0, 1] array through the sliding-window inferer.

    A one-channel network enhances each channel of a colour image on its own; a volume given to a 2D network is
    enhanced slice by slice along its last axis (singleton axes, e.g. CAMUS' (1, H, W) frames, are squeezed).
    """
    device = torch.device(device)
    squeezed = [axis for axis in range(1, array.ndim) if array.shape[axis] == 1 and array.ndim - 1 > spatial_dims]
    work = np.squeeze(array, axis=tuple(squeezed)) if squeezed else array
    channels = work.shape[0]
    if in_channels == 1:
        batch = work.reshape(channels, 1, *work.shape[1:])
    elif in_channels == channels:
        batch = work[None]
    elif channels == 1:
        batch = np.repeat(work[None], in_channels, axis=1)
    else:
        raise ValueError(f"the network takes {in_channels} channels, the image has {channels}")
    extra = batch.ndim - 2 - spatial_dims
    units = batch.shape[0]
    slices = batch.shape[-1] if extra == 1 else 0
    if extra == 1:  # (units, C, H, W, S) -> (units * S, C, H, W): slices of a volume as a batch of 2D images
        batch = np.moveaxis(batch, -1, 1).reshape(units * slices, *batch.shape[1:-1])
    elif extra != 0:
        raise ValueError(f"cannot enhance an array of shape {array.shape} with a {spatial_dims}D network")
    tensor = torch.as_tensor(np.ascontiguousarray(batch), dtype=torch.float32, device=device)
    network.eval()
    autocast = torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16,
                              enabled=amp)
    with torch.no_grad(), autocast:
        out = inferer(tensor, network).float().clamp(0, 1).cpu().numpy()
    if extra == 1:  # back to (units, C, H', W', S)
        out = np.moveaxis(out.reshape(units, slices, *out.shape[1:]), 1, -1)
    if in_channels == 1:  # each channel was its own unit
        out = out[:, 0]
    elif channels == 1:  # a grey image given to a colour network: average the colour output
        out = out.mean(axis=1)
    else:
        out = out[0]
    for axis in squeezed:
        out = np.expand_dims(out, axis)
    return out


def enhance_directory(
    network: nn.Module,
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    roi_size: tuple[int, ...] = (128, 128),
    sw_batch_size: int = 4,
    overlap: float = 0.25,
    in_channels: int = 1,
    spatial_dims: int = 2,
    device: torch.device | str = "cpu",
    amp: bool = False,
    recursive: bool = True,
    progress: bool = True,
) -> list[dict]:
    """Enhance every supported image under ``input_dir`` into ``output_dir`` (sub-folders mirrored), each in its
    input's format with its metadata. Images larger than ``roi_size`` go through a sliding window; smaller ones
    are padded to it and cropped back. Returns one record per file (paths, shapes, seconds)."""
    images = find_images(input_dir, recursive)
    network = network.to(device)
    inferer = SlidingWindowInferer(roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, overlap=overlap,
                                   mode="gaussian", padding_mode="replicate")
    root, out_root = Path(input_dir), Path(output_dir)
    records = []
    for path in tqdm(images, desc="enhancing", disable=not progress):
        start = time.perf_counter()
        source = read_image(path)
        result = enhance_array(network, source.array, inferer, in_channels, spatial_dims, device, amp)
        target = out_root / path.relative_to(root)
        write_like(result, source, target)
        records.append({"input": str(path), "output": str(target), "input_shape": list(source.array.shape),
                        "output_shape": list(result.shape), "seconds": time.perf_counter() - start})
    return records


class EnhanceDirectory:
    """Bundle entry point: ``"inference": "$@enhancer()"`` loads the checkpoint (a state dict, or a training
    checkpoint holding ``ip_network``) and enhances ``input_dir`` into ``output_dir``."""

    def __init__(self, network: nn.Module, input_dir: str, output_dir: str, checkpoint: str | None = None,
                 roi_size=(128, 128), sw_batch_size: int = 4, overlap: float = 0.25, in_channels: int = 1,
                 spatial_dims: int = 2, device: torch.device | str = "cpu", amp: bool = False,
                 progress: bool = True) -> None:
        self.network, self.checkpoint = network, checkpoint
        self.input_dir, self.output_dir = input_dir, output_dir
        self.kwargs = dict(roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, overlap=overlap,
                           in_channels=in_channels, spatial_dims=spatial_dims, device=device, amp=amp,
                           progress=progress)

    def __call__(self) -> list[dict]:
        find_images(self.input_dir)  # fail on a bad input folder before loading anything
        if self.checkpoint is not None:
            load_network_weights(self.network, self.checkpoint, key="ip_network")
        return enhance_directory(self.network, self.input_dir, self.output_dir, **self.kwargs)
