"""Random Network Distillation (Burda et al., 2019): novelty as the error of predicting a random network.

References: cleanrl ``ppo_rnd_envpool.py`` and jcwleo/random-network-distillation-pytorch (their
networks, normalisations and hyperparameters; README, "Exploration: the explorative-attention ViT with
RND"). The PPO module owns one :class:`RND` (``model.intrinsic``) and calls it once per rollout
(rewards, statistics) and once per minibatch (predictor loss); every running statistic is a buffer, so
a checkpoint resumes it exactly. The statistics live here, not in numpy beside the model as in the
references.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from jsonargparse.typing import PositiveInt
from torch import Tensor, nn

from lit_rl.errors import ConfigError
from lit_rl.models.init import TRUNK_GAIN, orthogonal_init_
from lit_rl.models.running_stats import ReduceSum, RunningMeanStd, discounted_returns


def rnd_rewards(predicted: Tensor, target: Tensor) -> Tensor:
    """Raw intrinsic rewards ``½‖f_pred − f_target‖²``. Shapes: ``[M, F]``, ``[M, F]`` → ``[M]``."""
    return 0.5 * (predicted.float() - target.float()).pow(2).sum(-1)


def rnd_loss(predicted: Tensor, target: Tensor) -> Tensor:
    """Predictor loss: per-sample MSE over features, averaged over the samples (the ones
    :meth:`RND.loss` drew). Shapes: ``predicted``, ``target``: ``[M, F]``, ``M >= 1``."""
    per_sample = F.mse_loss(predicted.float(), target.detach().float(), reduction="none").mean(-1)
    return per_sample.sum() / per_sample.shape[0]


def _network(input_shape: tuple[int, ...], feature_dim: int, predictor: bool) -> nn.Sequential:
    """The target (or, with ``predictor``, the deeper predictor) network of jcwleo's and cleanrl's RND."""
    if len(input_shape) == 3:
        convs = nn.Sequential(
            nn.Conv2d(input_shape[0], 32, 8, stride=4),
            nn.LeakyReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.LeakyReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.LeakyReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = convs(torch.zeros(1, *input_shape)).shape[1]
        body = [*convs, nn.Linear(flat, feature_dim)]
    else:  # vector observations (classic control): an MLP in place of the convolutions
        width = 256
        body = [nn.Flatten(), nn.Linear(int(torch.tensor(input_shape).prod()), width), nn.LeakyReLU()]
        body += [nn.Linear(width, width), nn.LeakyReLU(), nn.Linear(width, feature_dim)]
    if predictor:
        body += [nn.ReLU(), nn.Linear(feature_dim, feature_dim), nn.ReLU(), nn.Linear(feature_dim, feature_dim)]
    return orthogonal_init_(nn.Sequential(*body), TRUNK_GAIN)


class RND(nn.Module):
    """Frozen random ``target``, trained ``predictor``, and the statistics that scale their error.

    Args:
        obs_shape: The agent's observation shape; RND sees the newest frame ``[1, H, W]`` of image
            stacks (pixels, not the policy's features, as in Burda et al.) and whole vector observations.
        num_envs: Envs per process (the discounted intrinsic return is tracked per env).
        gamma: Intrinsic discount ``γ_int``, of the reward normaliser and of the intrinsic GAE.
        ext_coef, int_coef: ``A = ext_coef · A_ext + int_coef · A_int``.
        update_proportion: Fraction of each minibatch the predictor trains on.
        obs_clip: Normalised inputs are clipped to ``[-obs_clip, obs_clip]``.
        warmup_rollouts: Rollouts of ``num_steps`` uniformly random steps that initialise the
            observation statistics before training (one update per rollout-sized block).
        feature_dim: Output width of both networks.

    Buffers (saved in checkpoints): ``obs_rms`` (per-pixel mean/var), ``return_rms`` (variance of the
    discounted intrinsic return), ``int_return`` ``[num_envs]`` (that return, carried across rollouts;
    per process: under DDP each rank keeps its own, the checkpoint holds rank 0's) and ``warmup_done``
    (warm-up rollouts done).
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        num_envs: int,
        *,
        gamma: float = 0.99,
        ext_coef: float = 2.0,
        int_coef: float = 1.0,
        update_proportion: float = 0.25,
        obs_clip: float = 5.0,
        warmup_rollouts: int = 50,
        feature_dim: PositiveInt = 512,
    ) -> None:
        super().__init__()
        if not 0.0 < update_proportion <= 1.0:
            raise ConfigError(f"model.intrinsic.update_proportion={update_proportion}; expected a value in (0, 1]")
        if not 0.0 <= gamma < 1.0:
            raise ConfigError(f"model.intrinsic.gamma={gamma}; expected a value in [0, 1)")
        if warmup_rollouts < 0 or obs_clip <= 0:
            raise ConfigError(
                f"model.intrinsic.warmup_rollouts={warmup_rollouts}, obs_clip={obs_clip}; "
                "expected warmup_rollouts >= 0 and obs_clip > 0"
            )
        obs_shape = tuple(int(d) for d in obs_shape)
        self.image = len(obs_shape) == 3
        if self.image and min(obs_shape[1:]) < 36:
            raise ConfigError(
                f"RND's convolutions need frames of at least 36×36, got obs_shape={obs_shape}; "
                "use 84×84 frames (atari.screen_size)"
            )
        self.input_shape = (1, *obs_shape[1:]) if self.image else obs_shape
        self.gamma, self.ext_coef, self.int_coef = float(gamma), float(ext_coef), float(int_coef)
        self.update_proportion, self.obs_clip = float(update_proportion), float(obs_clip)
        self.warmup_rollouts = int(warmup_rollouts)
        self.target = _network(self.input_shape, int(feature_dim), predictor=False).requires_grad_(False)
        self.predictor = _network(self.input_shape, int(feature_dim), predictor=True)
        self.obs_rms = RunningMeanStd(self.input_shape)
        self.return_rms = RunningMeanStd(())
        self.register_buffer("int_return", torch.zeros(int(num_envs)))
        self.register_buffer("warmup_done", torch.zeros((), dtype=torch.int64))

    def select_input(self, obs: Tensor) -> Tensor:
        """What RND sees of observations ``[B, *obs_shape]``: the newest frame ``[B, 1, H, W]`` of image
        stacks (gymnasium's and ale-py's stacks put it last), whole vectors otherwise. Keeps the dtype."""
        return obs[:, -1:] if self.image else obs

    @property
    def warmup_pending(self) -> int:
        """Warm-up rollouts still to run before training."""
        return max(0, self.warmup_rollouts - int(self.warmup_done))

    def normalize(self, x: Tensor) -> Tensor:
        """``clip((x − μ) / σ, −c, c)`` in float32 with the running per-pixel statistics."""
        mean, std = self.obs_rms.mean.float(), self.obs_rms.std(eps=1e-8)
        return ((x.float() - mean) / std).clamp(-self.obs_clip, self.obs_clip)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Predictor and target features ``[M, F]`` of RND inputs ``[M, *input_shape]`` (raw)."""
        x = self.normalize(x)
        return self.predictor(x), self.target(x)

    @torch.no_grad()
    def rewards(self, x: Tensor, chunk: int = 4096) -> Tensor:
        """Raw intrinsic rewards ``[M]`` of inputs ``[M, *input_shape]`` (in chunks, to bound memory)."""
        return torch.cat([rnd_rewards(*self(part)) for part in x.split(chunk)])

    def loss(self, x: Tensor) -> Tensor:
        """Predictor loss on a random ``update_proportion`` of the inputs ``[M, *input_shape]``.

        Deviation from reference: cleanrl runs both networks on the whole minibatch and masks the
        loss; only the drawn samples are run here (the same loss and gradient, ``update_proportion`` of the work).
        """
        mask = torch.rand(x.shape[0], device=x.device) < self.update_proportion
        if not mask.any():  # keep the predictor in the graph (DDP expects a gradient for every parameter)
            return self.predictor(self.normalize(x[:1])).sum() * 0.0
        chosen = x[mask]
        predicted = self.predictor(self.normalize(chosen))
        with torch.no_grad():
            target = self.target(self.normalize(chosen))
        return rnd_loss(predicted, target)

    @torch.no_grad()
    def normalize_rewards(self, rewards: Tensor, reduce_sum: ReduceSum | None = None) -> Tensor:
        """Divide ``[T, N]`` raw rewards by the running std of the discounted intrinsic return.

        Updates the per-env return (non-episodic, carried across rollouts) and its statistics with
        this rollout's ``T × N`` returns of every process first, as jcwleo's RND does.
        """
        returns, carry = discounted_returns(rewards, self.int_return.to(rewards.dtype), self.gamma)
        self.int_return.copy_(carry)
        self.return_rms.update(returns.reshape(-1), reduce_sum)
        return rewards / self.return_rms.std(eps=1e-8)

    @torch.no_grad()
    def update_obs_stats(self, x: Tensor, reduce_sum: ReduceSum | None = None) -> None:
        """Add inputs ``[M, *input_shape]`` (of every process, with ``reduce_sum``) to the pixel statistics."""
        self.obs_rms.update(x.reshape(-1, *self.input_shape), reduce_sum)


#: What YAML configures (``model.intrinsic``): the module supplies ``obs_shape`` and ``num_envs``.
RNDFactory = Callable[[tuple[int, ...], int], RND]
