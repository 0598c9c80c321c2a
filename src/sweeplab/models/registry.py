from sweeplab.registry import Registry

MODELS: Registry = Registry("model")
