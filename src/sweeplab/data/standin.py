"""`sweeplab standin-data DIR`: small CIFAR-10, MNIST and Fashion-MNIST files in their real on-disk
formats (the code CI's smoke runs use), so every example runs on a machine that cannot download the
genuine sets. The images are class patterns plus noise: learnable, and nothing like the real ones."""

import argparse
from collections.abc import Sequence
from pathlib import Path

from sweeplab.config import SweeplabError
from sweeplab.data.formats import write_cifar10, write_mnist
from sweeplab.files import environment_fault


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweeplab standin-data", description=__doc__)
    p.add_argument("folder", type=Path, help="where to write them (use it as data_dir=FOLDER)")
    p.add_argument("--train", type=int, default=2000, help="training images per data set (default 2000)")
    p.add_argument("--test", type=int, default=1000, help="test images per data set (default 1000)")
    return p


def main(argv: Sequence[str]) -> None:
    args = parser().parse_args(argv)
    if args.train < 10 or args.test < 10:
        raise SweeplabError(f"--train and --test: at least 10 images each, got {args.train} and {args.test}")
    genuine = [
        args.folder / sub
        for sub in ("cifar-10-batches-py", "MNIST", "FashionMNIST")
        if (args.folder / sub).exists()
    ]
    if genuine:
        raise SweeplabError(
            f"{', '.join(map(str, genuine))} already exist; stand-ins are never written over data sets "
            "(they may be the genuine ones). Choose an empty folder"
        )
    try:
        write_cifar10(args.folder, args.train, args.test)
        write_mnist(args.folder, args.train, args.test)
        write_mnist(args.folder, args.train, args.test, folder="FashionMNIST", seed=1)
    except OSError as err:
        raise environment_fault(err, err.filename) or err from None
    print(
        f"wrote stand-in CIFAR-10, MNIST and Fashion-MNIST ({args.train} training and {args.test} test "
        f"images each) into {args.folder}.\nUse them with data_dir={args.folder} and "
        "SWEEPLAB_VERIFY_MD5=false (they are not the genuine CIFAR-10 files), e.g.\n"
        f"  SWEEPLAB_VERIFY_MD5=false sweeplab train sweep=cifar10_cnn size=smoke data_dir={args.folder}\n"
        "Numbers measured on them say nothing about the real data sets."
    )
