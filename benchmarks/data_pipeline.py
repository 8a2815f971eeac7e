"""What caching the deterministic part of a bundle's data pipeline and DataLoader workers buy, in one run.

Builds an ISIC-2018-shaped data set (the fixture writer's layout, with the images replaced by `--side`-pixel
JPEGs, the size class of real dermoscopy photographs) and iterates one training epoch of the isic2018 bundle's
own preprocessing (`train#preprocessing`: decode, resize to 256, flips, rotation, Gaussian noise) with:

- `Dataset`: every epoch decodes and resizes every image again;
- `CacheDataset`: decode + resize cached once (MONAI stops caching at the first random transform, so the flips,
  rotation and noise stay random every epoch); the one-off caching time is reported apart;
- and each with 0 and `--workers` DataLoader worker processes.

Prints images/s per variant and the ratio to the uncached single-process loader.

    python benchmarks/data_pipeline.py                  # 64 images of 1024 x 768, workers 0 and 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _dataset(root: Path, count: int, side: int) -> Path:
    import numpy as np
    from PIL import Image

    from monai_gradprom.data.fixtures import write_isic2018

    data = write_isic2018(root / "isic", num=count, num_val=2, num_test=2)
    rng = np.random.default_rng(0)
    height = side * 3 // 4
    for image in (data / "ISIC2018_Task1-2_Training_Input").glob("ISIC_*.jpg"):
        mask = data / "ISIC2018_Task1_Training_GroundTruth" / f"{image.stem}_segmentation.png"
        yy, xx = np.mgrid[0:height, 0:side]
        lesion = ((yy - height / 2) ** 2 + (xx - side / 2) ** 2) < (rng.uniform(0.2, 0.4) * height) ** 2
        rgb = (rng.random((height, side, 3)) * 40 + np.where(lesion[..., None], 90, 180)).astype(np.uint8)
        Image.fromarray(rgb).save(image, quality=90)
        Image.fromarray((lesion * 255).astype(np.uint8)).save(mask)
    return data


def _epoch(dataset, workers: int, batch: int) -> float:
    from monai.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                        persistent_workers=False)
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    import torch
    from monai.bundle import ConfigParser
    from monai.data import CacheDataset, Dataset

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        data = _dataset(Path(tmp), args.images, args.side)
        parser_ = ConfigParser()
        parser_.read_config(str(REPO / "bundles/isic2018/train.json"))
        parser_["dataset_dir"] = str(data)
        items = parser_.get_parsed_content("datalists")["training"]
        transform = parser_.get_parsed_content("train#preprocessing")
        start = time.perf_counter()
        cached = CacheDataset(items, transform, cache_rate=1.0, num_workers=args.workers, progress=False)
        cache_seconds = time.perf_counter() - start
        plain = Dataset(items, transform)
        rows = []
        for name, dataset in (("Dataset", plain), ("CacheDataset", cached)):
            for workers in (0, args.workers):
                _epoch(dataset, workers, args.batch)  # warm-up (worker start, page cache)
                seconds = min(_epoch(dataset, workers, args.batch) for _ in range(2))
                rows.append((name, workers, len(items) / seconds))
    base = rows[0][2]
    print(f"data pipeline of bundles/isic2018 (train#preprocessing), {len(items)} JPEGs of {args.side} x "
          f"{args.side * 3 // 4}, batch {args.batch}, best of 2 epochs; caching took {cache_seconds:.1f} s once")
    print(f"{'dataset':<14} {'workers':>7} {'img/s':>8} {'x Dataset, 0 workers':>21}")
    for name, workers, rate in rows:
        print(f"{name:<14} {workers:>7} {rate:>8.1f} {rate / base:>21.2f}")


if __name__ == "__main__":
    main()
