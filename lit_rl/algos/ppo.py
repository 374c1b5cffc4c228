"""Proximal Policy Optimization (Schulman et al., 2017) as a LightningModule, optionally with RND.

Reference: cleanrl ``ppo_atari.py``; the update reads top to bottom as its inner loop does. With
``intrinsic`` (Random Network Distillation) it follows cleanrl ``ppo_rnd_envpool.py`` and Burda et al.
(2019): two value heads, an episodic extrinsic and a non-episodic intrinsic
GAE, ``A = ext_coef · A_ext + int_coef · A_int``, and the predictor trained in the same step.
Deviations from the reference are marked where they happen.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Literal

import lightning as L
import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torchmetrics import MeanMetric

from lit_rl.algos.gae import compute_gae
from lit_rl.algos.ppo_loss import PPOLossOutput, ppo_loss
from lit_rl.data.collector import EpisodeStats
from lit_rl.data.rollout import Rollout
from lit_rl.errors import ConfigError, NonFiniteError
from lit_rl.evaluation import EpisodeResults
from lit_rl.models.actor_critic import ActorCritic, HeadStyle
from lit_rl.models.extractors.base import ExtractorFactory
from lit_rl.models.extractors.mlp import MLP
from lit_rl.models.intrinsic.rnd import RND, RNDFactory
from lit_rl.models.running_stats import ReduceSum
from lit_rl.specs import EnvSpec

# Per-update sums are kept in this order: the loss terms, then the pre-clip gradient norm (the terms
# whose finiteness decides whether a minibatch may step), then the diagnostics.
LOSS_KEYS = ("loss/policy", "loss/value", "loss/entropy")
INTRINSIC_LOSS_KEYS = ("loss/int_value", "loss/rnd")
DIAG_KEYS = ("diag/grad_norm", "diag/approx_kl", "diag/clip_fraction")
NONFINITE_ADVICE = "lower the learning rate or check the env's rewards and observations"
#: Room ids are one RAM byte (Montezuma's Revenge).
NUM_ROOM_IDS = 256


def adam(params) -> torch.optim.Optimizer:
    """cleanrl's optimiser: Adam, lr 2.5e-4, eps 1e-5; the fused kernel (the same update in one pass:
    measured in the README's Performance section)."""
    return torch.optim.Adam(params, lr=2.5e-4, eps=1e-5, fused=True)


def check_optimizer(optimizer: OptimizerCallable) -> None:
    """Build the optimiser once on a dummy parameter so a bad argument is a :class:`ConfigError` now,
    before any env is built, and require a positive learning rate (torch accepts 0)."""
    try:
        probe = optimizer([torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model.optimizer: {err}") from None
    for group in probe.param_groups:
        lr = float(group["lr"])
        if not lr > 0:
            raise ConfigError(f"model.optimizer.init_args.lr={lr}; expected a positive learning rate")


def explained_variance(values: Tensor, returns: Tensor) -> Tensor:
    """``1 - Var[returns - values] / Var[returns]`` (NaN when the returns do not vary)."""
    var = returns.var()
    return torch.where(var > 0, 1.0 - (returns - values).var() / var, torch.full_like(var, float("nan")))


@torch.no_grad()
def intrinsic_advantages(
    rnd: RND, rollout: Rollout, *, gae_lambda: float, reduce_sum: ReduceSum | None = None
) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Non-episodic intrinsic GAE of a rollout: advantages and returns ``[T, N]`` and diagnostics.

    Rewards come from ``rnd``'s observation statistics before this rollout; the statistics (reward
    and observation) are updated with its data afterwards (cleanrl's order). Episode ends never cut
    the intrinsic return (``rollout.terminated``/``truncated`` are not read).
    """
    raw = rnd.rewards(rollout.next_obs.flatten(0, 1)).view_as(rollout.rewards)
    rewards = rnd.normalize_rewards(raw, reduce_sum)
    rnd.update_obs_stats(rollout.next_obs, reduce_sum)
    never = torch.zeros_like(rollout.rewards, dtype=torch.bool)
    advantages, returns = compute_gae(
        rewards,
        rollout.int_values,
        rollout.int_last_value,
        never,  # non-episodic: novelty flows across episode ends
        never,
        torch.zeros_like(rewards),
        gamma=rnd.gamma,
        gae_lambda=gae_lambda,
    )
    metrics = {
        "rnd/intrinsic_reward": float(rewards.mean()),
        "rnd/intrinsic_reward_raw": float(raw.mean()),
        "rnd/int_return_std": float(rnd.return_rms.std()),
        "diag/int_explained_variance": float(explained_variance(rollout.int_values, returns)),
    }
    return advantages, returns, metrics


class PPO(L.LightningModule):
    """PPO with GAE over a rollout served by :class:`lit_rl.data.datamodule.RolloutDataModule`.

    Hooks implemented: ``configure_optimizers``, ``training_step`` (manual optimisation: one
    Adam step per minibatch, gradient-norm clipping, ``target_kl`` early stop),
    ``on_train_batch_start`` (ends the update after an early stop), ``on_train_epoch_start`` /
    ``on_train_epoch_end`` (timing, logging against env steps, the budget, the finiteness check),
    ``transfer_batch_to_device``, ``validation_step`` / ``test_step`` (log the evaluation episodes
    the datamodule ran for ``lit-rl validate`` / ``test``), ``on_save_checkpoint`` (refuses a
    non-finite state) and ``on_load_checkpoint``. The datamodule calls :meth:`record_episodes` and
    :meth:`process_rollout` once per rollout, and :meth:`warm_up` while :attr:`warmup_pending`.

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
        nonfinite: What a minibatch with a NaN or infinite loss term or gradient norm does (checked
            on every rank before the optimiser step, so the parameters are never touched by it).
            ``stop``: raise :class:`lit_rl.errors.NonFiniteError` naming the env step and the terms; the
            last checkpoint stays the last good one. ``skip``: drop that minibatch's update, warn once
            per rollout and count the drops in ``diag/skipped_updates``. Non-finite parameters or
            buffers at the end of an update always stop the run, and are never written to a checkpoint.
        normalize_obs: Normalise float observations with running statistics (SB3's ``VecNormalize``
            observation filter; :class:`lit_rl.models.running_stats.ObservationNormalizer`), a module of
            the policy, so evaluation and checkpoints use exactly what training used. The statistics
            are updated once per rollout after its update, from training rollouts only (of every rank).
        obs_clip: Bound of the normalised observations (SB3's ``clip_obs``).
        head_layers: Hidden widths of the MLPs in front of the actor and the critic head (SB3's
            ``net_arch=dict(pi=..., vf=...)``); empty: linear heads on the features (cleanrl).
        head_activation: Their activation, ``relu`` or ``tanh``.
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
    ) -> None:
        super().__init__()
        if total_env_steps <= 0:
            raise ConfigError(f"model.total_env_steps={total_env_steps}; expected a positive integer")
        if not (0.0 <= gamma <= 1.0 and 0.0 <= gae_lambda <= 1.0):
            raise ConfigError(f"model.gamma={gamma}, model.gae_lambda={gae_lambda}; expected values in [0, 1]")
        if nonfinite not in ("stop", "skip"):
            raise ConfigError(f"model.nonfinite={nonfinite!r}; expected 'stop' or 'skip'")
        # Checkpoints keep plain Python values (no jsonargparse PositiveInt, the spec as a dict) so
        # they load with torch.load(weights_only=True) and through LightningCLI's instantiator.
        if isinstance(env_spec, dict):
            env_spec = EnvSpec(**env_spec)
        spec = env_spec
        env_spec = dataclasses.asdict(spec)
        if normalize_obs and spec.obs_dtype == "uint8":
            raise ConfigError(
                f"model.normalize_obs=true with uint8 image observations of shape {tuple(spec.obs_shape)}; "
                "observation normalisation is for float observations (images are scaled to [0, 1] already): "
                "set model.normalize_obs=false"
            )
        total_env_steps, clip_coef, obs_clip = int(total_env_steps), float(clip_coef), float(obs_clip)
        stop_at_env_steps = None if stop_at_env_steps is None else int(stop_at_env_steps)
        if stop_at_env_steps is not None and not 0 < stop_at_env_steps <= total_env_steps:
            raise ConfigError(
                f"model.stop_at_env_steps={stop_at_env_steps}; expected a positive number of env steps up to "
                f"model.total_env_steps={total_env_steps}"
            )
        head_layers = [int(w) for w in head_layers]
        max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        target_kl = None if target_kl is None else float(target_kl)
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
            head_layers=tuple(int(w) for w in head_layers),
            head_activation=head_activation,
        )
        self._obs_to_normalize: Tensor | None = None  # this rollout's observations, added after its update
        self.intrinsic: RND | None = None if intrinsic is None else intrinsic(spec.obs_shape, spec.num_envs)
        # Each rank's per-env intrinsic return is its own: DDP must not overwrite it with rank 0's.
        self._ddp_params_and_buffers_to_ignore = ["intrinsic.int_return"]
        self.dropout_in_update = dropout_in_update
        self.nonfinite = nonfinite
        check_optimizer(optimizer)
        self.optimizer_factory = optimizer
        self.total_env_steps = total_env_steps
        self.end_env_steps = total_env_steps if stop_at_env_steps is None else stop_at_env_steps
        self.anneal_lr, self.anneal_clip = anneal_lr, anneal_clip
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.clip_coef, self.clip_vloss = clip_coef, clip_vloss
        self.vf_coef, self.ent_coef = vf_coef, ent_coef
        self.max_grad_norm, self.norm_adv, self.target_kl = max_grad_norm, norm_adv, target_kl
        # Module state, so checkpoints resume the schedules exactly.
        self.register_buffer("env_steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))
        self.current_clip_coef = clip_coef
        self._stop_update = False
        self._epoch_start = (time.perf_counter(), 0)
        self._update_end = self._epoch_start[0]
        # Per-update sums of the loss terms: one fused add per minibatch, no host sync.
        self.loss_keys = LOSS_KEYS + (INTRINSIC_LOSS_KEYS if self.intrinsic is not None else ()) + DIAG_KEYS
        self.num_loss_terms = len(self.loss_keys) - len(DIAG_KEYS)
        self.register_buffer("_loss_sums", torch.zeros(len(self.loss_keys)), persistent=False)
        self.register_buffer("_loss_count", torch.zeros(()), persistent=False)
        self._skipped_updates = 0  # minibatches of this update dropped as non-finite (model.nonfinite=skip)
        self.episode_return = MeanMetric()
        self.episode_length = MeanMetric()
        self.episode_rooms = MeanMetric()
        # Rooms any env of any rank has been in since the start of training (Montezuma's Revenge).
        self.register_buffer("rooms_seen", torch.zeros(NUM_ROOM_IDS, dtype=torch.bool))
        self._rollout_metrics: dict[str, float] = {}
        self.latest_episode_return = float("nan")
        self.explained_var = torch.full((), float("nan"))

    # -- schedules and budget -------------------------------------------------------------------

    @property
    def progress_remaining(self) -> float:
        """``1 - env_steps / total_env_steps``, clamped to ``[0, 1]``."""
        return max(0.0, 1.0 - int(self.env_steps) / self.total_env_steps)

    @property
    def budget_reached(self) -> bool:
        return int(self.env_steps) >= self.end_env_steps

    def _apply_schedules(self) -> None:
        """Set lr and clip range from the env steps done before this rollout (cleanrl's ``frac``)."""
        frac = self.progress_remaining
        for group in self.optimizers().param_groups:
            group["lr"] = group["initial_lr"] * frac if self.anneal_lr else group["initial_lr"]
        self.current_clip_coef = self.clip_coef * frac if self.anneal_clip else self.clip_coef

    # -- rollout processing (called by the datamodule) ------------------------------------------

    def record_episodes(self, episodes: EpisodeStats) -> None:
        """Accumulate the raw returns, lengths and rooms of episodes that ended in the last rollout."""
        if episodes.returns.size:
            self.episode_return.update(torch.as_tensor(episodes.returns, dtype=torch.float32))
            self.episode_length.update(torch.as_tensor(episodes.lengths, dtype=torch.float32))
            self.latest_episode_return = float(episodes.returns.mean())
        if episodes.rooms.size:
            self.episode_rooms.update(torch.as_tensor(episodes.rooms, dtype=torch.float32))
        if episodes.rooms_seen.size or self.rooms_seen.any():
            seen = self.rooms_seen.float()
            seen[torch.as_tensor(episodes.rooms_seen, device=seen.device)] = 1.0
            # Every rank reaches this point once per rollout, so the reduction is collective.
            self.rooms_seen.copy_(self._reduce_sum(seen) > 0)

    # -- intrinsic rewards (RND) ----------------------------------------------------------------

    def _reduce_sum(self, x: Tensor) -> Tensor:
        """Sum over ranks (identity in one process or without a trainer)."""
        if self._trainer is None:
            return x
        return self.trainer.strategy.reduce(x, reduce_op="sum")

    @property
    def next_obs_view(self):
        """What the collector records of each next observation: RND's input, or ``None`` without RND."""
        return None if self.intrinsic is None else self.intrinsic.select_input

    @property
    def warmup_pending(self) -> bool:
        """RND's observation statistics still need random-policy rollouts (see :meth:`warm_up`)."""
        return self.intrinsic is not None and self.intrinsic.warmup_pending > 0

    @torch.no_grad()
    def warm_up(self, next_obs: Tensor) -> None:
        """Add one random-policy rollout's RND inputs ``[T, N, ...]`` (of every rank) to the observation
        statistics. Not counted as env steps (cleanrl does not count them either)."""
        self.intrinsic.update_obs_stats(next_obs, self._reduce_sum)
        self.intrinsic.warmup_done += 1

    @torch.no_grad()
    def process_rollout(self, rollout: Rollout) -> Rollout:
        """Count env steps, set the schedules and add advantages and returns (GAE)."""
        self._apply_schedules()
        self._stop_update = False
        advantages, returns = compute_gae(
            rollout.rewards,
            rollout.values,
            rollout.last_value,
            rollout.terminated,
            rollout.truncated,
            rollout.final_values,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
        )
        self.env_steps += rollout.num_transitions * self.trainer.world_size
        self.explained_var = explained_variance(rollout.values, returns)
        if self.policy.obs_norm is not None:
            self._obs_to_normalize = rollout.obs
        if self.intrinsic is None:
            return dataclasses.replace(rollout, advantages=advantages, returns=returns)
        int_advantages, int_returns, self._rollout_metrics = intrinsic_advantages(
            self.intrinsic, rollout, gae_lambda=self.gae_lambda, reduce_sum=self._reduce_sum
        )
        advantages = self.intrinsic.ext_coef * advantages + self.intrinsic.int_coef * int_advantages
        return dataclasses.replace(rollout, advantages=advantages, returns=returns, int_returns=int_returns)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["state_dict"]
        # Checkpoints written before room tracking have no rooms_seen buffer: start it empty.
        state.setdefault("rooms_seen", torch.zeros(NUM_ROOM_IDS, dtype=torch.bool))
        # The per-env intrinsic return of another data.num_envs cannot be mapped to these envs: restart it.
        saved = state.get("intrinsic.int_return")
        if self.intrinsic is not None and saved is not None and saved.shape != self.intrinsic.int_return.shape:
            state["intrinsic.int_return"] = torch.zeros_like(self.intrinsic.int_return)

    # -- the update -----------------------------------------------------------------------------

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = list(self.policy.parameters())
        if self.intrinsic is not None:
            params += list(self.intrinsic.predictor.parameters())  # the same optimiser (cleanrl ppo_rnd_envpool.py)
        optimizer = self.optimizer_factory(params)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        return optimizer

    def transfer_batch_to_device(
        self, batch: Rollout | EpisodeResults, device: torch.device, dataloader_idx: int
    ) -> Rollout | EpisodeResults:
        # Rollouts are collected on the module's device already; move only if they are not.
        # Evaluation results are host arrays of raw scores and stay there.
        if not isinstance(batch, Rollout) or batch.actions.device == device:
            return batch
        return batch.to(device)

    def on_train_batch_start(self, batch: Rollout, batch_idx: int) -> int | None:
        return -1 if self._stop_update else None  # -1 ends this epoch (= this update) on every rank

    def training_step(self, batch: Rollout, batch_idx: int) -> Tensor:
        # A recurrent policy gets whole chunks [L, K] with the memory recorded before each (see
        # Rollout.to_sequences); padding is masked out of every loss term. Each rank averages over
        # its own real samples, so under DDP ranks with more padding weigh their samples slightly more.
        if self.policy.training != self.dropout_in_update:
            self.policy.train(self.dropout_in_update)
        memory = None if batch.memory is None else batch.memory[0]
        new_log_probs, entropy, new_values, int_new_values = self.policy.evaluate(
            batch.obs, batch.actions, memory=memory, episode_start=batch.episode_starts
        )
        out = ppo_loss(
            new_log_probs,
            batch.log_probs,
            batch.advantages,
            new_values,
            batch.values,
            batch.returns,
            entropy,
            clip_coef=self.current_clip_coef,
            vf_coef=self.vf_coef,
            ent_coef=self.ent_coef,
            norm_adv=self.norm_adv,
            clip_vloss=self.clip_vloss,
            mask=batch.mask,
            int_new_values=int_new_values,
            int_returns=batch.int_returns,
        )
        loss = out.loss
        rnd_loss = None
        if self.intrinsic is not None:
            # A flat minibatch [B, ...], or the real steps of a sequence minibatch [L, K, ...].
            next_obs = batch.next_obs if batch.mask is None else batch.next_obs[batch.mask]
            rnd_loss = self.intrinsic.loss(next_obs.flatten(0, next_obs.dim() - len(self.intrinsic.input_shape) - 1))
            loss = loss + rnd_loss
        if self.target_kl is not None and self._kl_exceeded(out.approx_kl):
            # Deviation from reference: cleanrl checks the KL after a whole epoch; this stops before
            # the minibatch that exceeds it (as SB3), with the KL averaged over ranks.
            self._stop_update = True
            return loss.detach()
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        stats = self._step_stats(out, rnd_loss, optimizer)  # before clipping: the raw gradient norm
        if not self._step_is_finite(stats, batch_idx):
            optimizer.zero_grad(set_to_none=True)  # model.nonfinite=skip: this minibatch never steps
            return loss.detach()
        optimizer.step()
        self.num_updates += 1
        self._loss_sums += stats
        self._loss_count += 1
        return loss.detach()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Inside optimizer.step(), before the step. A GradScaler (16-mixed) has unscaled the gradients
        # already, except for fused optimizers, which unscale inside their step: unscale them here then
        # (the scaler then passes the step only its inf check). Clipping scaled gradients would clip
        # hardly ever. Lightning's clip_gradients refuses fused optimizers under a scaler, hence ours.
        if self.max_grad_norm is None:
            return
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is None:  # the gradients are the ones _step_stats measured: reuse that norm
            torch.nn.utils.clip_grads_with_norm_(params, self.max_grad_norm, self._grad_norm)
            return
        if getattr(optimizer, "_step_supports_amp_scaling", False):
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)

    def _kl_exceeded(self, approx_kl: Tensor) -> bool:
        kl = self.trainer.strategy.reduce(approx_kl.detach(), reduce_op="mean")
        return bool(kl > self.target_kl)

    def _step_stats(self, out: PPOLossOutput, rnd_loss: Tensor | None, optimizer) -> Tensor:
        """This minibatch's loss terms, total gradient norm and diagnostics, in ``loss_keys`` order."""
        terms = (out.policy_loss, out.value_loss, out.entropy)
        if rnd_loss is not None:
            terms += (out.int_value_loss, rnd_loss)
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norm = self._grad_norm = torch.nn.utils.get_total_norm(grads)
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is not None:  # 16-mixed: the gradients are still scaled here
            norm = norm / scaler.get_scale()
        terms += (norm, out.approx_kl, out.clip_fraction)
        return torch.stack([t.detach().float() for t in terms])

    def _step_is_finite(self, stats: Tensor, batch_idx: int) -> bool:
        """Whether the loss terms and gradient norm are finite on every rank (one host sync).

        Otherwise raise :class:`NonFiniteError` (``model.nonfinite=stop``), or warn once per rollout
        and count the minibatch as skipped.
        """
        # A GradScaler's scaled gradients overflow now and then by design; it skips those steps itself.
        scaled = getattr(self.trainer.precision_plugin, "scaler", None) is not None
        bad = ~torch.isfinite(stats[: self.num_loss_terms + (0 if scaled else 1)]).all()
        if self.trainer.world_size > 1:  # every rank must take the same decision
            bad = self.trainer.strategy.reduce(bad.float(), reduce_op="sum")
        if not bad.item():
            return True
        *losses, grad_norm = stats[: self.num_loss_terms + 1].tolist()
        keys = self.loss_keys[: self.num_loss_terms]
        terms = [f"{key}={value}" for key, value in zip(keys, losses, strict=True) if not math.isfinite(value)]
        if not terms and not math.isfinite(grad_norm):  # a non-finite loss has a non-finite gradient too
            terms = [f"gradient norm={grad_norm}"]
        terms = terms or ["loss on another process"]
        where = f"{', '.join(terms)} at env step {int(self.env_steps)} (minibatch {batch_idx} of this rollout, "
        where += f"after {int(self.num_updates)} updates)"
        if self.nonfinite == "stop":
            raise NonFiniteError(
                f"non-finite {where}; the update was not applied and the last checkpoint is kept; "
                f"{NONFINITE_ADVICE}, or set model.nonfinite=skip to skip such updates"
            )
        if self._skipped_updates == 0:
            rank_zero_warn(f"skipped the update of non-finite {where}; further skips are in diag/skipped_updates")
        self._skipped_updates += 1
        return False

    def check_finite_state(self) -> None:
        """Raise :class:`NonFiniteError` naming the first NaN or infinite floating tensor of the state
        dict (parameters and statistics of the policy and RND), on every rank alike; one host sync."""
        named = [(n, t) for n, t in self.state_dict(keep_vars=True).items() if t.is_floating_point()]
        bad = (~torch.stack([torch.isfinite(t.detach()).all() for _, t in named])).float()
        if self._trainer is not None and self.trainer.world_size > 1:  # RND's per-rank int_return may differ
            bad = self.trainer.strategy.reduce(bad, reduce_op="sum")
        indices = bad.nonzero().flatten().tolist()
        if not indices:
            return
        name = named[indices[0]][0]
        kind = "parameter" if name in dict(self.named_parameters()) else "buffer"
        more = f" and {len(indices) - 1} more" if len(indices) > 1 else ""
        raise NonFiniteError(
            f"non-finite {kind} {name}{more} at env step {int(self.env_steps)} (after {int(self.num_updates)} "
            f"updates); the last checkpoint is kept; {NONFINITE_ADVICE}"
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Callbacks' epoch-end hooks (checkpoints) run before the module's: never write a bad state.
        self.check_finite_state()

    def _loss_means(self) -> dict[str, float]:
        """Mean of each loss term over this update's minibatches and all ranks; resets the sums."""
        sums = self.trainer.strategy.reduce(self._loss_sums.clone(), reduce_op="sum")
        count = self.trainer.strategy.reduce(self._loss_count.clone(), reduce_op="sum")
        self._loss_sums.zero_()
        self._loss_count.zero_()
        if count.item() == 0:  # early stop before the first step: identical on every rank
            return {}
        return dict(zip(self.loss_keys, (sums / count).tolist(), strict=True))

    # -- evaluating a checkpoint: lit-rl validate / lit-rl test ---------------------------------

    def validation_step(self, batch: EpisodeResults, batch_idx: int) -> None:
        self._log_episodes(batch, "val")

    def test_step(self, batch: EpisodeResults, batch_idx: int) -> None:
        self._log_episodes(batch, "test")

    def _log_episodes(self, results: EpisodeResults, stage: str) -> None:
        """Log mean, std and length over the episodes of every rank (the datamodule ran them)."""
        returns = self.all_gather(torch.as_tensor(results.returns, dtype=torch.float64)).flatten()
        lengths = self.all_gather(torch.as_tensor(results.lengths, dtype=torch.float64)).flatten()
        gathered = EpisodeResults(returns.cpu().numpy(), lengths.cpu().numpy())
        size = len(gathered.returns)
        self.log(f"{stage}/episode_return", float(gathered.returns.mean()), batch_size=size)
        self.log(f"{stage}/episode_return_std", float(gathered.returns.std()), batch_size=size)
        self.log(f"{stage}/episode_length", float(gathered.lengths.mean()), batch_size=size)
        rank_zero_info(
            f"{'Validation' if stage == 'val' else 'Test'} at {int(self.env_steps):,} env steps: {gathered.summary()}"
        )

    # -- logging against env steps --------------------------------------------------------------

    def on_train_start(self) -> None:
        if self.budget_reached:  # resumed from the checkpoint of a finished run: nothing left to do
            rank_zero_info(f"The budget of {self.end_env_steps:,} env steps is already reached")
            self.trainer.should_stop = True

    def on_train_epoch_start(self) -> None:
        self._epoch_start = (time.perf_counter(), int(self.env_steps))
        self._update_end = self._epoch_start[0]

    def on_train_batch_end(self, outputs: Tensor, batch: Rollout, batch_idx: int) -> None:
        # Lightning runs callbacks' epoch-end hooks (evaluation, checkpoints) before the module's,
        # so steps/s is measured to the end of the last minibatch: collection + update only.
        self._update_end = time.perf_counter()
        last = self._stop_update or batch_idx == self.trainer.num_training_batches - 1
        if last and self._obs_to_normalize is not None:
            # After the update's last minibatch, before evaluation and checkpoints (epoch-end hooks):
            # the checkpoint holds the statistics the next rollout acts with, so a resume is exact.
            self.policy.obs_norm.update(self._obs_to_normalize.flatten(0, 1), self._reduce_sum)
            self._obs_to_normalize = None

    def on_train_epoch_end(self) -> None:
        self.check_finite_state()
        start_time, start_steps = self._epoch_start
        env_steps = int(self.env_steps)
        sps = (env_steps - start_steps) / max(self._update_end - start_time, 1e-9)
        metrics = {
            "env_steps": float(env_steps),
            "perf/sps": sps,
            "diag/explained_variance": float(self.explained_var),
            "diag/learning_rate": self.optimizers().optimizer.param_groups[0]["lr"],
            "diag/clip_coef": self.current_clip_coef,
        }
        metrics.update(self._loss_means())
        if self.nonfinite == "skip":
            # The decision is reduced over ranks, so every rank skipped the same minibatches.
            metrics["diag/skipped_updates"] = float(self._skipped_updates)
            self._skipped_updates = 0
        metrics.update(self._rollout_metrics)
        if self.rooms_seen.any():
            metrics["rollout/rooms_total"] = float(self.rooms_seen.sum())
        for name, metric in [
            ("rollout/episode_return", self.episode_return),
            ("rollout/episode_length", self.episode_length),
            ("rollout/episode_rooms", self.episode_rooms),
        ]:
            # Every rank computes every metric (a collective under DDP), updated or not.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*compute.*before.*update", category=UserWarning)
                value = float(metric.compute())
            metric.reset()
            if not math.isnan(value):
                metrics[name] = value
        for logger in self.loggers:
            logger.log_metrics(metrics, step=env_steps)
        self.log("env_steps", float(env_steps), prog_bar=True, logger=False)
        self.log("sps", round(sps), prog_bar=True, logger=False)
        self.log("ep_return", self.latest_episode_return, prog_bar=True, logger=False)
        if self.budget_reached:
            self.trainer.should_stop = True
