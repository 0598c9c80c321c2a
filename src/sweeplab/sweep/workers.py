"""The pool of worker processes that run trials when `n_jobs > 1`.

Workers are spawned, not forked: a fork would copy the controller's threads and any CUDA state. Each
worker gets an equal share of the CPU threads and, when there are GPUs, one of them (round-robin), so
`n_jobs` trials share the machine instead of oversubscribing it.
"""

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor


def start_workers(n_jobs: int) -> ProcessPoolExecutor:
    import torch  # the controller only asks how many GPUs there are; it never initialises CUDA

    context = mp.get_context("spawn")
    slots = context.Queue()
    for slot in range(n_jobs * 64):  # a replacement worker (after a crash) takes the next slot
        slots.put(slot)
    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    return ProcessPoolExecutor(
        n_jobs,
        mp_context=context,
        initializer=_init_worker,
        initargs=(threads, torch.cuda.device_count(), slots),
    )


def _init_worker(threads: int, gpus: int, slots) -> None:
    slot = slots.get()
    if gpus:  # before the first CUDA call, so the trial's "cuda" is this worker's GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
    import torch

    torch.set_num_threads(threads)
