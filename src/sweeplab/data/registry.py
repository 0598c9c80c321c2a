from sweeplab.registry import Registry

DATASETS: Registry = Registry("dataset")
