"""Distillation: the typed config, cached teacher labels, the loss, the training loop, model cards."""
