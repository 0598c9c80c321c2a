"""Reading an image data set in the folder-per-class layout: the first decode (into the uint8 cache) and
every later load (from the cache), against torchvision's ImageFolder reading the same files once.

    python bench/bench_image_cache.py [--source ../shared/data/cifar10-jpeg/cifar10-jpeg.tar.gz] [--repeats 3]

The default source is the CIFAR-10 JPEG (q75) copy beside the project. ImageFolder needs the files
unpacked, so its time is taken on an extracted copy (extraction not counted); it decodes with PIL, one
image at a time, as a DataLoader does every epoch.
"""

import argparse
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

from sweeplab.data.image_folder import load_image_folder

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg/cifar10-jpeg.tar.gz"


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-folder", action="store_true", help="also time torchvision's ImageFolder")
    args = parser.parse_args()
    if not args.source.exists():
        raise SystemExit(f"{args.source} not found: give --source PATH (a folder or archive)")
    with tempfile.TemporaryDirectory() as cache:
        first, raw = timed(lambda: load_image_folder(args.source, Path(cache)))
        n = len(raw.y_train) + len(raw.y_test)  # type: ignore[attr-defined]
        size = sum(f.stat().st_size for f in Path(cache).rglob("*.pt")) / 2**20
        print(f"{args.source.name}: {n} images, cache {size:.0f} MiB")
        print(f"first load (read + decode + cache): {first:.1f} s ({n / first:,.0f} images/s)")
        loads = [timed(lambda: load_image_folder(args.source, Path(cache)))[0] for _ in range(args.repeats)]
        touched = [
            timed(lambda: load_image_folder(args.source, Path(cache)).x_train.float().sum())[0]
            for _ in range(args.repeats)
        ]
        print(f"cached load: {statistics.median(loads) * 1000:.0f} ms (memory-mapped)")
        print(f"cached load, every training pixel read once: {statistics.median(touched):.2f} s")
    if args.image_folder and tarfile.is_tarfile(args.source):
        from torchvision.datasets import ImageFolder

        with tempfile.TemporaryDirectory() as unpacked:
            with tarfile.open(args.source) as archive:
                archive.extractall(unpacked, filter="data")
            folder = ImageFolder(str(Path(unpacked) / "train"))
            seconds, _ = timed(lambda: [folder[i] for i in range(len(folder))])
            print(f"torchvision ImageFolder, one pass over train/ with PIL: {seconds:.1f} s (every epoch)")


if __name__ == "__main__":
    main()
