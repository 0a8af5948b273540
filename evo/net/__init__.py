"""Networks: model building, PyTorch source, checkpoints and the training loop."""
