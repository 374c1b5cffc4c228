"""lit_rl: PyTorch Lightning PPO for studying attention in deep RL.

Importing it registers lit_rl's gymnasium envs (``lit_rl/StatelessCartPole-v1``, ``lit_rl/CueMemory-v0``),
as gymnasium's own env packages do, so ``gymnasium.make`` finds them after ``import lit_rl``.
"""

__version__ = "0.1.0"

from lit_rl.envs.classic import register_envs as _register_envs

_register_envs()
