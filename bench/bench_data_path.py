"""sweeplab's data path against the classic torchvision + DataLoader loop.

Same model, same number of steps, same batch size, one validation pass at the end in both; the time
is that of the training loop (data set loading and model building excluded on both sides).

    python bench/bench_data_path.py [--steps 500] [--device cpu] [--repeats 3]

CIFAR-10 is stood in for by generated files in its real on-disk format (the genuine ones cannot be
downloaded here); what is timed, reading uint8 images into tensors and normalising them, is the same.
"""

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision import datasets as tvd
from torchvision import transforms as T

from sweeplab.data import load_data
from sweeplab.data.formats import write_cifar10
from sweeplab.data.vision import trusting_present_files
from sweeplab.paths import config_dir
from sweeplab.train import train


def classic_loop(
    model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, steps: int, device: str
) -> float:
    """The loop most tutorials write: iterate a DataLoader, move each batch, step; `.item()` per step."""
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    start, step, running = time.perf_counter(), 0, 0.0
    while step < steps:
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += loss.item()
            step += 1
            if step == steps:
                break
    model.eval()
    with torch.no_grad():
        correct = sum((model(x.to(device)).argmax(1) == y.to(device)).sum().item() for x, y in val_loader)
    assert correct >= 0
    return time.perf_counter() - start


def sweeplab_loop(overrides: list[str], steps: int, batch: int, device: str) -> float:
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                *overrides,
                "optimizer=sgd",
                f"trainer.max_steps={steps}",
                f"trainer.batch_size={batch}",
                f"trainer.eval_every={steps}",
                f"trainer.device={device}",
                "trainer.progress=false",
            ],
        )
    return train(cfg).metrics["train_seconds"]


def mlp(sizes: list[int]) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in itertools.pairwise(sizes[:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))


def bench_cifar(root: Path, args: argparse.Namespace, workers: int) -> tuple[float, float]:
    with trusting_present_files(tvd.CIFAR10):  # generated stand-ins, not the genuine files
        tf = T.Compose([T.ToTensor(), T.Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))])
        train_set = tvd.CIFAR10(str(root), train=True, transform=tf)
        val_set = tvd.CIFAR10(str(root), train=False, transform=tf)
        loader = DataLoader(train_set, batch_size=200, shuffle=True, drop_last=True, num_workers=workers)
        val_loader = DataLoader(val_set, batch_size=1000, num_workers=workers)
        classic = classic_loop(mlp([3072, 100, 10]), loader, val_loader, args.steps, args.device)
        ours = sweeplab_loop(
            [
                "dataset=cifar10",
                f"dataset.root={root}",
                "dataset.download=false",
                "model.hidden=[100]",
                "preprocess=standardize",
            ],
            args.steps,
            200,
            args.device,
        )
    return classic, ours


def bench_mnist1d(data_dir: Path, args: argparse.Namespace, workers: int) -> tuple[float, float]:
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        data = load_data(compose("config", overrides=[f"data_dir={data_dir}"]).dataset)
    loader = DataLoader(
        TensorDataset(data.x_train.flatten(1), data.y_train),
        batch_size=128,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
    )
    val_loader = DataLoader(TensorDataset(data.x_val.flatten(1), data.y_val), batch_size=1000)
    classic = classic_loop(mlp([40, 100, 100, 10]), loader, val_loader, args.steps, args.device)
    ours = sweeplab_loop([f"data_dir={data_dir}"], args.steps, 128, args.device)
    return classic, ours


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to try"
    )
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"{args.steps} steps, median of {args.repeats}"
    )
    print("| workload | classic DataLoader workers | classic s | sweeplab s | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cifar10(root, n_train=10_000, n_test=1_000)
        workloads = {
            "CIFAR-10 MLP 3072-100-10, batch 200": lambda w: bench_cifar(root, args, w),
            "MNIST-1D MLP 40-100-100-10, batch 128": lambda w: bench_mnist1d(root, args, w),
        }
        for name, bench in workloads.items():
            for workers in args.workers:
                runs = [bench(workers) for _ in range(args.repeats)]
                classic = statistics.median(r[0] for r in runs)
                ours = statistics.median(r[1] for r in runs)
                print(
                    f"| {name} | {workers} | {classic:.2f} | {ours:.2f} | {classic / ours:.1f}x |", flush=True
                )


if __name__ == "__main__":
    main()
