"""User-facing environment options (plain dataclasses, so LightningCLI exposes every field)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AtariOptions:
    """The Atari protocol of the axis-attention study (README, "Atari protocol and backends") and of
    cleanrl / RL Zoo, field by field.

    The env id only selects the game: ``PongNoFrameskip-v4``, ``ALE/Pong-v5`` and ``Pong-v4`` give the
    same environment; the protocol is defined here. The ``ale`` and ``gymnasium`` backends take exactly
    the steps of SB3's ``AtariWrapper`` + ``VecFrameStack`` with these settings (README, "Atari protocol
    and backends").

    Args:
        frame_skip: Agent steps repeat the action this many emulator frames, observing the max over
            the last two.
        noop_max: 1 to this many random single-frame no-ops after each new game (0 disables them).
        screen_size: Side of the square grayscale observation.
        frame_stack: Number of stacked observations (channel-first), zeros before an episode's first.
        terminal_on_life_loss: Episodes end on a life loss for the agent (the game goes on; the
            logged and evaluated return still covers the full game).
        clip_reward: Training rewards are clipped to their sign. Evaluation envs never clip.
        fire_reset: Press FIRE, then action 2, after each reset (each life, in training) in games with
            FIRE, as SB3's ``FireResetEnv``.
        sticky_action_prob: Probability of repeating the previous action (0 = NoFrameskip-v4,
            0.25 = Machado et al. 2018).
        full_action_space: Use all 18 actions instead of the game's minimal set.
        max_episode_frames: Episodes are truncated after this many emulator frames (108,000 =
            30 minutes, ale-py's ``NoFrameskip-v4`` limit).
    """

    frame_skip: int = 4
    noop_max: int = 30
    screen_size: int = 84
    frame_stack: int = 4
    terminal_on_life_loss: bool = True
    clip_reward: bool = True
    fire_reset: bool = True
    sticky_action_prob: float = 0.0
    full_action_space: bool = False
    max_episode_frames: int = 108_000

    def __post_init__(self) -> None:
        for name in ("frame_skip", "screen_size", "frame_stack", "max_episode_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"atari.{name}={getattr(self, name)}; expected a positive integer")
        if self.noop_max < 0:
            raise ValueError(f"atari.noop_max={self.noop_max}; expected an integer >= 0")
        if not 0.0 <= self.sticky_action_prob < 1.0:
            raise ValueError(f"atari.sticky_action_prob={self.sticky_action_prob}; expected a value in [0, 1)")

    def for_evaluation(self) -> AtariOptions:
        """The protocol of evaluation envs: what the agent sees is unchanged, rewards are raw.

        As in RL Zoo's ``EvalCallback`` (the study's evaluation), a life loss is handled as in
        training (frame stack reset, FIRE), while the scored episode is the full game with its raw
        return (the episode statistics report only game overs).
        """
        from dataclasses import replace

        return replace(self, clip_reward=False)


# Datamodule hyperparameters in checkpoints hold AtariOptions; allow it for torch.load(weights_only=True).
torch.serialization.add_safe_globals([AtariOptions])
