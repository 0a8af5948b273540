"""Torch -> ONNX -> OpenVINO IR export with parity checks. Never imports ``evo``."""
