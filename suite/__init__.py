"""suite: an experiment-tracked benchmark suite for knowledge distillation in dense prediction."""

__version__ = "0.1.0"
