"""Targets and latency measurement for exported models; runs without torch on an edge box.

Imports nothing heavy at package level; onnxruntime, openvino and ai-edge-litert are each
optional and loaded only when a target of theirs is detected or measured.

- ``hardware.targets``: ``parse_target``, ``detect_targets``, ``resolve_target`` (``ort:cpu``,
  ``ov:NPU``, ``litert:cpu``, ...).
- ``hardware.latency``: ``measure(model_path, target, protocol, threads) -> Measurement``,
  the ``FULL`` and ``QUICK`` protocols.
- ``hardware.runner``: ``run_bench`` over many models and targets; ``BenchResults`` is the
  results file (``save``/``load``) carried back from an edge device.
- ``hardware.host``: ``describe_host`` (machine and runtime versions, fingerprint).
- ``python -m hardware``: the same as a torch-free command line.
"""
