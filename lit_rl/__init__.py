"""lit_rl: PyTorch Lightning PPO for studying attention in deep RL."""

__version__ = "0.1.0"
