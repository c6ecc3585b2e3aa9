"""From a trained model to a deployable one, each step measured against its parent.

- :mod:`.export`: ONNX, ``torch.export`` and TorchScript exports, checked on real inputs when written;
- :mod:`.quantize`: int8 post-training (dynamic, static with calibration) and quantization-aware training;
- :mod:`.prune`: unstructured magnitude pruning (global, layer-wise) and structured channel pruning of
  ResNets, with iterative prune-and-fine-tune;
- :mod:`.measure`: what a compressed model costs: parameters, non-zeros, size on disk, FLOPs, CPU latency;
- :mod:`.lineage`: every compressed model is a run of the run store, linked to its parent.

Knowledge distillation is a task (``task.name=distillation``, :mod:`deepatlas.tasks.distillation`), trained
by the ordinary engine. Nothing here is imported by ``import deepatlas``.
"""
