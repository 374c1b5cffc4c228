"""Super Mario Bros from the optional ``gymnasium-mariobros`` package (``pip install 'lit_rl[mario]'``).

The package (a gymnasium port of Kautenja's ``gym-super-mario-bros`` on the cynes NES emulator, with
its ROMs) registers its ids when imported: ``SuperMarioBros-v0`` … ``-v3`` (the whole game, three
lives; ``v0``–``v3`` choose the ROM's look, not a version), ``SuperMarioBros-<world>-<stage>-v<0-3>``
(one stage: a death or the flag ends the episode), ``SuperMarioBrosRandomStages-v0`` … ``-v3`` and
``SuperMarioBros2-v0``/``-v1`` (Lost Levels). One raw step is one NES frame: RGB ``[240, 256, 3]``
uint8, 256 button-bitmask actions, reward = x progress + clock penalty − 25 on a death.

The wrapper stack is that of PyTorch's Mario tutorial (``intermediate/mario_rl_tutorial``: joypad
action subset, frame skip, grayscale, resize to 84, 4 stacked frames), with the max-pool over the
last two frames of SB3's ``MaxAndSkipEnv`` and the raw episode statistics of
:mod:`lit_rl.envs.episode_info`. Rewards are not clipped.
"""

from __future__ import annotations

import re
import warnings
from typing import Literal

import gymnasium as gym

from lit_rl.errors import ConfigError

ActionSet = Literal["right_only", "simple", "complex"]

MARIO_PACKAGE = "gymnasium_mariobros"
INSTALL_HINT = "pip install 'lit_rl[mario]'"

# Ids of the package all contain "SuperMarioBros"; used only to name the extra when it is missing.
_MARIO_LIKE = re.compile(r"supermariobros", re.IGNORECASE)


def ensure_mario_registered() -> None:
    """Import ``gymnasium_mariobros``, which registers its ids with gymnasium (once per process).

    Raises:
        ConfigError: The package is not installed (or its emulator does not load).
    """
    try:
        import gymnasium_mariobros  # noqa: F401
    except ImportError as error:
        raise ConfigError(f"Super Mario Bros envs need the mario extra: {INSTALL_HINT} ({error})") from error


def is_mario(env_id: str) -> bool:
    """True if ``env_id`` is registered by ``gymnasium-mariobros``.

    The package is imported only for ids not yet registered, so Atari and classic ids cost nothing.

    Raises:
        ConfigError: ``env_id`` looks like a Mario id and the package is not installed.
    """
    spec = gym.registry.get(env_id)
    if spec is None:
        try:
            ensure_mario_registered()
        except ConfigError:
            if _MARIO_LIKE.search(env_id):
                raise
            return False
        spec = gym.registry.get(env_id)
    return spec is not None and isinstance(spec.entry_point, str) and spec.entry_point.startswith(f"{MARIO_PACKAGE}:")


def make_mario_env(
    env_id: str,
    *,
    frame_skip: int = 4,
    screen_size: int = 84,
    frame_stack: int = 4,
    action_set: ActionSet = "simple",
) -> gym.Env:
    """One Mario env with discrete actions and stacked 84×84 gray frames.

    Wrappers, innermost first: the package's ``JoypadSpace`` with its ``RIGHT_ONLY`` (5 actions),
    ``SIMPLE_MOVEMENT`` (7) or ``COMPLEX_MOVEMENT`` (12) set; ``MaxAndSkipObservation`` (repeat
    the action ``frame_skip`` frames, sum the rewards, max over the last two RGB frames, as SB3's
    ``AtariWrapper``); ``RecordEpisodeStatistics`` (raw return, length in agent steps);
    ``GrayscaleObservation``; ``ResizeObservation`` (cv2 ``INTER_AREA``); ``FrameStackObservation``
    (padded with the first frame at an episode start). ``terminated`` is the game's own end (game
    over, or death/flag in a one-stage env); ``truncated`` only comes from gymnasium's ``TimeLimit``.

    The seed does not change the game. Copies are not exact replicas either: the package's start
    state can differ between emulator instances (the in-game clock's phase), so envs given the same
    actions may differ in clock ticks and HUD pixels.

    Args:
        env_id: A ``gymnasium-mariobros`` id, e.g. ``SuperMarioBros-1-1-v0``.
        frame_skip: Emulator frames per agent step (1 = no skipping, no max-pool).
        screen_size: Side of the square grayscale observation.
        frame_stack: Number of stacked observations (channel-first).
        action_set: ``"right_only"``, ``"simple"`` or ``"complex"``.

    Returns:
        An env with ``Discrete`` actions and uint8 observations ``[frame_stack, screen_size, screen_size]``.
    """
    # Registers inside the factory: async workers started with spawn do not inherit the registry.
    ensure_mario_registered()
    from gymnasium_mariobros.actions import COMPLEX_MOVEMENT, RIGHT_ONLY, SIMPLE_MOVEMENT
    from gymnasium_mariobros.wrappers import JoypadSpace

    actions = {"right_only": RIGHT_ONLY, "simple": SIMPLE_MOVEMENT, "complex": COMPLEX_MOVEMENT}
    if action_set not in actions:
        raise ConfigError(f"action_set={action_set!r}; expected one of {sorted(actions)}")
    for name, value in (("frame_skip", frame_skip), ("screen_size", screen_size), ("frame_stack", frame_stack)):
        if value < 1:
            raise ConfigError(f"{name}={value}; expected a positive integer")
    with warnings.catch_warnings():
        # gymnasium reads -v0..-v3 as versions and calls -v0 "out of date"; here they are ROM looks.
        warnings.filterwarnings("ignore", message=".*is out of date", category=DeprecationWarning)
        env = gym.make(env_id)
    env = JoypadSpace(env, actions[action_set])
    if frame_skip > 1:
        env = gym.wrappers.MaxAndSkipObservation(env, skip=frame_skip)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env = gym.wrappers.GrayscaleObservation(env, keep_dim=False)
    env = gym.wrappers.ResizeObservation(env, (screen_size, screen_size))
    return gym.wrappers.FrameStackObservation(env, frame_stack)
