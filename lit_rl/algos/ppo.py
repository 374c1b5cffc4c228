"""Proximal Policy Optimization (Schulman et al., 2017) as a LightningModule, optionally with RND.

Reference: cleanrl ``ppo_atari.py``; the update reads top to bottom as its inner loop does. With
``intrinsic`` (Random Network Distillation) it follows cleanrl ``ppo_rnd_envpool.py`` and Burda et al.
(2019): two value heads, the predictor trained in the same step (:mod:`lit_rl.algos.intrinsic`), the
advantages of :func:`lit_rl.algos.advantages.rollout_advantages`. Deviations are marked where they happen.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from lit_rl.algos import intrinsic as rnd_wiring
from lit_rl.algos.advantages import explained_variance, rollout_advantages
from lit_rl.algos.loss_sums import LossSums, step_stats
from lit_rl.algos.optim import adam, check_optimizer, clip_gradients, gradients
from lit_rl.algos.ppo_loss import ppo_loss
from lit_rl.algos.rollout_module import RolloutModule
from lit_rl.data.rollout import Rollout
from lit_rl.errors import ConfigError
from lit_rl.models.actor_critic import ActorCritic, HeadStyle
from lit_rl.models.extractors.base import ExtractorFactory
from lit_rl.models.extractors.mlp import MLP
from lit_rl.models.intrinsic.rnd import RND, RNDFactory
from lit_rl.specs import EnvSpec


class PPO(RolloutModule):
    """PPO with GAE over a rollout served by :class:`lit_rl.data.datamodule.RolloutDataModule`, whose
    :class:`lit_rl.data.protocol.RolloutLearner` it is: the datamodule calls :meth:`prepare_rollout`
    once per rollout, and :meth:`warm_up` while :attr:`warmup_pending`.

    Adds the update to :class:`RolloutModule` (env steps, budget, logging, the non-finite guard): one Adam
    step per minibatch (manual optimisation), gradient clipping, ``target_kl``, schedules, advantages, RND.

    Args:
        env_spec: Linked from the datamodule by the CLI (an :class:`EnvSpec` or its ``asdict``).
        extractor: Trunk factory (YAML ``class_path``); the policy supplies ``obs_shape``.
        optimizer: Optimiser factory; its ``lr`` is the initial learning rate.
        total_env_steps: Training budget in env steps over all processes; the lr and clip schedules
            anneal over it.
        stop_at_env_steps: End the run at this many env steps instead, with the schedules still following
            ``total_env_steps`` (e.g. the first million steps of the study's 10 M schedule); the run is then
            complete there (final evaluation, ``DONE``). ``None``: at ``total_env_steps``.
        anneal_lr: Anneal the learning rate linearly to 0 over the budget.
        anneal_clip: Anneal ``clip_coef`` linearly to 0 over the budget (RL Zoo's ``lin_0.1``).
        gamma, gae_lambda: GAE parameters.
        clip_coef: PPO ratio clip ε.
        clip_vloss: Clip the value loss around the old values.
        vf_coef: Value-loss weight (cleanrl's 0.5·MSE convention: SB3's ``c`` is ``2c`` here).
        ent_coef: Entropy-bonus weight.
        max_grad_norm: Gradient-norm clip (``None`` disables it).
        norm_adv: Normalise advantages per minibatch.
        target_kl: Stop the update of a rollout once a minibatch's approximate KL exceeds this.
        shared_extractor: Actor and critic share the trunk.
        channels_last: Channels-last activations for image observations.
        heads: Head style of the policy, ``linear`` or ``rnd`` (see :class:`ActorCritic`).
        intrinsic: Intrinsic-reward module factory (:class:`lit_rl.models.intrinsic.rnd.RND`); adds
            the intrinsic value head. ``gamma`` is then the extrinsic discount (0.999 in RND).
        dropout_in_update: Run the update with the policy's dropout active. Off (default): the policy
            is in eval mode in the update as in rollouts, so the ratio at the first minibatch is exactly 1.
            On: the original explorative ViT's regularisation, at the price of a noisy ratio.
        nonfinite: What a minibatch with a NaN or infinite loss term or gradient norm does, checked on every
            rank before its step: ``stop`` raises :class:`lit_rl.errors.NonFiniteError` (the last checkpoint
            stays the last good one); ``skip`` drops its update, warns once per rollout and counts the drops
            in ``diag/skipped_updates``. A non-finite state at the end of an update always stops the run and
            is never written to a checkpoint (:mod:`lit_rl.algos.nonfinite`).
        normalize_obs: Normalise float observations with running statistics (SB3's ``VecNormalize``
            observation filter), a module of the policy, so evaluation and checkpoints use exactly what
            training used; updated once per rollout after its update, from training rollouts of every rank.
        obs_clip: Bound of the normalised observations (SB3's ``clip_obs``).
        head_layers: Hidden widths of the MLPs in front of the actor and the critic head (SB3's
            ``net_arch=dict(pi=..., vf=...)``); empty: linear heads on the features (cleanrl).
        head_activation: Their activation, ``relu`` or ``tanh``.
        init: ``orthogonal`` (cleanrl's gains) or ``default`` (PyTorch's, SB3's ``ortho_init=False``).
    """

    def __init__(
        self,
        env_spec: EnvSpec | dict,
        extractor: ExtractorFactory = MLP,
        optimizer: OptimizerCallable = adam,
        *,
        total_env_steps: PositiveInt = 10_000_000,
        stop_at_env_steps: PositiveInt | None = None,
        anneal_lr: bool = True,
        anneal_clip: bool = False,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_coef: PositiveFloat = 0.1,
        clip_vloss: bool = True,
        vf_coef: float = 0.5,
        ent_coef: float = 0.01,
        max_grad_norm: PositiveFloat | None = 0.5,
        norm_adv: bool = True,
        target_kl: PositiveFloat | None = None,
        shared_extractor: bool = True,
        channels_last: bool = True,
        heads: HeadStyle = "linear",
        intrinsic: RNDFactory | None = None,
        dropout_in_update: bool = False,
        nonfinite: Literal["stop", "skip"] = "stop",
        normalize_obs: bool = False,
        obs_clip: PositiveFloat = 10.0,
        head_layers: tuple[int, ...] = (),
        head_activation: Literal["tanh", "relu"] = "relu",
        init: Literal["orthogonal", "default"] = "orthogonal",
    ) -> None:
        if not (0.0 <= gamma <= 1.0 and 0.0 <= gae_lambda <= 1.0):
            raise ConfigError(f"model.gamma={gamma}, model.gae_lambda={gae_lambda}; expected values in [0, 1]")
        # Checkpoints keep plain Python values (no jsonargparse PositiveInt, the spec as a dict) so
        # they load with torch.load(weights_only=True) and through LightningCLI's instantiator.
        spec = EnvSpec(**env_spec) if isinstance(env_spec, dict) else env_spec
        env_spec = dataclasses.asdict(spec)
        if normalize_obs and spec.obs_dtype == "uint8":
            raise ConfigError(
                f"model.normalize_obs=true with uint8 image observations of shape {tuple(spec.obs_shape)}; "
                "observation normalisation is for float observations (images are scaled to [0, 1] already): "
                "set model.normalize_obs=false"
            )
        total_env_steps, clip_coef, obs_clip = int(total_env_steps), float(clip_coef), float(obs_clip)
        stop_at_env_steps = None if stop_at_env_steps is None else int(stop_at_env_steps)
        head_layers = [int(w) for w in head_layers]
        max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        target_kl = None if target_kl is None else float(target_kl)
        super().__init__(total_env_steps=total_env_steps, stop_at_env_steps=stop_at_env_steps, nonfinite=nonfinite)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.env_spec = spec
        self.policy = ActorCritic(
            spec.obs_shape,
            spec.num_actions,
            extractor,
            shared_extractor=shared_extractor,
            channels_last=channels_last,
            heads=heads,
            intrinsic_value=intrinsic is not None,
            normalize_obs=normalize_obs,
            obs_clip=obs_clip,
            head_layers=tuple(head_layers),
            head_activation=head_activation,
            init=init,
        )
        self._obs_to_normalize: Tensor | None = None  # this rollout's observations, added after its update
        self.intrinsic: RND | None = None if intrinsic is None else intrinsic(spec.obs_shape, spec.num_envs)
        self._ddp_params_and_buffers_to_ignore = [rnd_wiring.INT_RETURN_KEY]  # per rank
        self.dropout_in_update = dropout_in_update
        check_optimizer(optimizer)
        self.optimizer_factory = optimizer
        self.anneal_lr, self.anneal_clip, self.gamma, self.gae_lambda = anneal_lr, anneal_clip, gamma, gae_lambda
        self.clip_coef, self.clip_vloss = clip_coef, clip_vloss
        self.vf_coef, self.ent_coef = vf_coef, ent_coef
        self.max_grad_norm, self.norm_adv, self.target_kl = max_grad_norm, norm_adv, target_kl
        self.current_clip_coef = clip_coef
        self.loss_sums = LossSums(intrinsic=self.intrinsic is not None)
        self._rollout_metrics: dict[str, float] = {}
        self.explained_var = torch.full((), float("nan"))

    # -- the RolloutLearner interface (lit_rl.data.protocol), called by the datamodule ----------

    @property
    def next_obs_view(self):
        """What the collector records of each next observation: RND's input, or ``None`` without RND."""
        return None if self.intrinsic is None else self.intrinsic.select_input

    @property
    def warmup_pending(self) -> bool:
        """RND's observation statistics still need random-policy rollouts (see :meth:`warm_up`)."""
        return self.intrinsic is not None and self.intrinsic.warmup_pending > 0

    def warm_up(self, next_obs: Tensor) -> None:
        rnd_wiring.warm_up(self.intrinsic, next_obs, self._reduce_sum)
        self.nonfinite.state_changed()

    @torch.no_grad()
    def process_rollout(self, rollout: Rollout) -> Rollout:
        """Count env steps, set the schedules (from the env steps before this rollout, cleanrl's
        ``frac``) and add advantages and returns."""
        frac = self.progress_remaining
        for group in self.optimizers().param_groups:
            group["lr"] = group["initial_lr"] * frac if self.anneal_lr else group["initial_lr"]
        self.current_clip_coef = self.clip_coef * frac if self.anneal_clip else self.clip_coef
        self._stop_update = False
        self.nonfinite.state_changed()
        rnd, mixing = self.intrinsic, {}
        if rnd is not None:  # A = ext_coef · A_ext + int_coef · A_int
            int_rewards, self._rollout_metrics = rnd_wiring.intrinsic_rewards(rnd, rollout, self._reduce_sum)
            mixing = dict(int_rewards=int_rewards, int_gamma=rnd.gamma, ext_coef=rnd.ext_coef, int_coef=rnd.int_coef)
        out = rollout_advantages(rollout, gamma=self.gamma, gae_lambda=self.gae_lambda, **mixing)
        self.env_steps += rollout.num_transitions * self.trainer.world_size
        self.explained_var = explained_variance(rollout.values, out.returns)
        if self.intrinsic is not None:
            self._rollout_metrics["diag/int_explained_variance"] = float(
                explained_variance(rollout.int_values, out.int_returns)
            )
        if self.policy.obs_norm is not None:
            self._obs_to_normalize = rollout.obs
        return dataclasses.replace(rollout, advantages=out.advantages, returns=out.returns, int_returns=out.int_returns)

    # -- the update -----------------------------------------------------------------------------

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = list(self.policy.parameters())
        if self.intrinsic is not None:
            params += list(self.intrinsic.predictor.parameters())  # the same optimiser (cleanrl ppo_rnd_envpool.py)
        optimizer = self.optimizer_factory(params)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        return optimizer

    def training_step(self, batch: Rollout, batch_idx: int) -> Tensor:
        # A recurrent policy gets whole chunks [L, K] with the memory recorded before each (see
        # Rollout.to_sequences); padding is masked out of every loss term. Each rank averages over
        # its own real samples, so under DDP ranks with more padding weigh their samples slightly more.
        if self.policy.training != self.dropout_in_update:
            self.policy.train(self.dropout_in_update)
        memory = None if batch.memory is None else batch.memory[0]
        new = self.policy.score_actions(batch.obs, batch.actions, memory=memory, episode_start=batch.episode_starts)
        out = ppo_loss(
            new.log_probs,
            batch.log_probs,
            batch.advantages,
            new.values,
            batch.values,
            batch.returns,
            new.entropy,
            clip_coef=self.current_clip_coef,
            vf_coef=self.vf_coef,
            ent_coef=self.ent_coef,
            norm_adv=self.norm_adv,
            clip_vloss=self.clip_vloss,
            mask=batch.mask,
            int_new_values=new.int_values,
            int_returns=batch.int_returns,
        )
        rnd_loss = None if self.intrinsic is None else rnd_wiring.predictor_loss(self.intrinsic, batch)
        loss = out.loss if rnd_loss is None else out.loss + rnd_loss
        if self.target_kl is not None and self._kl_exceeded(out.approx_kl):
            # Deviation from reference: cleanrl checks the KL after a whole epoch; this stops before
            # the minibatch that exceeds it (as SB3), with the KL averaged over ranks.
            self._stop_update = True
            return loss.detach()
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        self._grad_norm = torch.nn.utils.get_total_norm(gradients(optimizer))  # before clipping
        # 16-mixed: the gradients are still scaled here
        stats = step_stats(out, rnd_loss, self._grad_norm if scaler is None else self._grad_norm / scaler.get_scale())
        if not self.step_is_finite(stats, self.loss_sums, batch_idx, scaled=scaler is not None):
            optimizer.zero_grad(set_to_none=True)  # model.nonfinite=skip: this minibatch never steps
            return loss.detach()
        optimizer.step()
        self.nonfinite.state_changed()
        self.num_updates += 1
        self.loss_sums.add(stats)
        return loss.detach()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.max_grad_norm is not None:  # inside optimizer.step(), before the step
            clip_gradients(
                optimizer, self.max_grad_norm, self._grad_norm, getattr(self.trainer.precision_plugin, "scaler", None)
            )

    def _kl_exceeded(self, approx_kl: Tensor) -> bool:
        kl = self.trainer.strategy.reduce(approx_kl.detach(), reduce_op="mean")
        return bool(kl > self.target_kl)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        rnd_wiring.restart_int_return(checkpoint["state_dict"], self.intrinsic)

    def on_update_end(self) -> None:
        if self._obs_to_normalize is not None:
            # The checkpoint holds the statistics the next rollout acts with, so a resume is exact.
            self.policy.obs_norm.update(self._obs_to_normalize.flatten(0, 1), self._reduce_sum)
            self._obs_to_normalize = None
            self.nonfinite.state_changed()

    def update_metrics(self) -> dict[str, float]:
        metrics = {
            "diag/explained_variance": float(self.explained_var),
            "diag/learning_rate": self.optimizers().optimizer.param_groups[0]["lr"],
            "diag/clip_coef": self.current_clip_coef,
            **self.loss_sums.means(self._reduce_sum),
        }
        if self.nonfinite.mode == "skip":
            # The decision is reduced over ranks, so every rank skipped the same minibatches.
            metrics["diag/skipped_updates"] = float(self.nonfinite.skipped)
            self.nonfinite.skipped = 0
        return metrics | self._rollout_metrics
