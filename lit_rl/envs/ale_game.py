"""One Atari game with Stable-Baselines3's ``AtariWrapper`` protocol, on ale-py's ``ALEInterface`` directly.

The same protocol as the gymnasium reference stack (:func:`lit_rl.envs.atari.make_atari_env`), written
as one flat state machine instead of six wrappers, so that a worker process can step many games with
little Python per emulator frame (:class:`lit_rl.envs.ale_pool.AlePool`). Each method names the SB3
wrapper whose ``step``/``reset`` it reproduces, in SB3's order (bottom to top):

``AtariEnv`` (frame skip 1) → ``NoopResetEnv`` → ``MaxAndSkipEnv`` → episode statistics →
``EpisodicLifeEnv`` → ``FireResetEnv`` → ``WarpFrame`` (``ClipRewardEnv`` and ``VecFrameStack`` are
vectorised in the pool).

Seeding follows ``ale_py.env.AtariEnv``: ``reset(seed=s)`` derives the no-op generator and the ALE seed
from ``SeedSequence(s)``, so the same seed gives the same no-op counts here, in the reference stack and
in SB3 (tests/envs/test_sb3_protocol.py checks all three).
"""

from __future__ import annotations

import cv2
import numpy as np
from gymnasium.utils import seeding

from lit_rl.envs.options import AtariOptions

NOOP, FIRE, SECOND = 0, 1, 2  # action indices SB3's wrappers use (FireResetEnv steps 1, then 2)


class AleGame:
    """One game; ``reset`` and ``step`` return the warped (gray, resized) frame of the top of SB3's stack.

    Args:
        rom: ale-py ROM id (``"breakout"``).
        options: The protocol; all of :class:`AtariOptions` is supported.
    """

    def __init__(self, rom: str, options: AtariOptions) -> None:
        import ale_py
        from ale_py import roms

        self.options = options
        self.ale = ale_py.ALEInterface()
        self.ale.setLoggerMode(ale_py.LoggerMode.Error)
        self.ale.setFloat("repeat_action_probability", options.sticky_action_prob)
        self.ale.setInt("max_num_frames_per_episode", options.max_episode_frames)
        self.rom_path = roms.get_rom_path(rom)
        self._seed(None)
        actions = self.ale.getLegalActionSet() if options.full_action_space else self.ale.getMinimalActionSet()
        self.actions = [a.value for a in actions]
        self.fire = options.fire_reset and len(actions) >= 3 and actions[1] == ale_py.Action.FIRE
        self.size = options.screen_size
        h, w = self.ale.getScreenDims()
        self._screens = np.zeros((2, h, w, 3), dtype=np.uint8)  # MaxAndSkipEnv._obs_buffer, never cleared
        self._screen = np.zeros((h, w, 3), dtype=np.uint8)
        self._gray = np.zeros((h, w), dtype=np.uint8)
        self._pooled = False  # whether the current observation is the max-pool (else the screen itself)
        self._real_done = True  # EpisodicLifeEnv.was_real_done
        self._lives = 0
        self.episode_return, self.episode_length = 0.0, 0

    # --- AtariEnv and NoopResetEnv --------------------------------------------------------------

    def _seed(self, seed: int | None) -> None:
        """``AtariEnv.seed_game`` + ``load_game``."""
        np_seed, ale_seed = np.random.SeedSequence(seed).generate_state(n_words=2)
        self.rng, _ = seeding.np_random(int(np_seed))
        self.ale.setInt("random_seed", np.int32(ale_seed))
        self.ale.loadROM(self.rom_path)

    def _frame(self, index: int) -> tuple[float, bool, bool]:
        """``AtariEnv.step`` with frame skip 1: one emulator frame."""
        reward = self.ale.act(self.actions[index])
        if not self.ale.game_over():  # with truncation; the common case costs one call
            return reward, False, False
        return reward, self.ale.game_over(with_truncation=False), self.ale.game_truncated()

    def _noop_reset(self, seed: int | None) -> None:
        """``NoopResetEnv.reset``: reset the game, then 1..noop_max no-op frames."""
        if seed is not None:
            self._seed(seed)
        self.ale.reset_game()
        if self.options.noop_max > 0:
            for _ in range(int(self.rng.integers(1, self.options.noop_max + 1))):
                _, terminated, truncated = self._frame(NOOP)
                if terminated or truncated:
                    self.ale.reset_game()
        self._pooled = False

    # --- MaxAndSkipEnv and the episode statistics above it ---------------------------------------

    def _skip_step(self, index: int) -> tuple[float, bool, bool]:
        """``MaxAndSkipEnv.step``: repeat the action, keep the last two screens, stop at a game over.

        The statistics (raw return and length in these steps) are counted here, above the frame skip
        and below the life loss, as the reference stack's ``RecordEpisodeStatistics``.
        """
        skip = self.options.frame_skip
        if skip == 1:  # SB3 leaves MaxAndSkipEnv out
            total, terminated, truncated = self._frame(index)
        else:
            total, terminated, truncated = 0.0, False, False
            for i in range(skip):
                reward, terminated, truncated = self._frame(index)
                if i >= skip - 2:
                    self.ale.getScreenRGB(self._screens[i - skip + 2])
                total += reward
                if terminated or truncated:
                    break
        self._pooled = skip > 1
        self.episode_return += total
        self.episode_length += 1
        return total, terminated, truncated

    def _real_reset(self, seed: int | None) -> None:
        """``RecordEpisodeStatistics.reset`` over ``NoopResetEnv.reset``."""
        self._noop_reset(seed)
        self.episode_return, self.episode_length = 0.0, 0

    # --- EpisodicLifeEnv ---------------------------------------------------------------------------

    def _life_step(self, index: int) -> tuple[float, bool, bool]:
        reward, terminated, truncated = self._skip_step(index)
        self._real_done = terminated or truncated
        if not self.options.terminal_on_life_loss:
            return reward, terminated, truncated
        lives = self.ale.lives()
        if 0 < lives < self._lives:
            terminated = True
        self._lives = lives
        return reward, terminated, truncated

    def _life_reset(self, seed: int | None) -> None:
        if not self.options.terminal_on_life_loss or self._real_done:
            self._real_reset(seed)
        else:
            _, terminated, truncated = self._skip_step(NOOP)  # advance from the lost-life state
            if terminated or truncated:
                self._real_reset(seed)
        self._lives = self.ale.lives()

    # --- FireResetEnv, WarpFrame: the public interface ------------------------------------------------

    def reset(self, seed: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Start the next training episode (a new game after a game over, else the next life); returns
        its first frame (written to ``out`` if given)."""
        self._life_reset(seed)
        if not self.fire:
            return self.observe(out)
        _, terminated, truncated = self._life_step(FIRE)
        if terminated or truncated:
            self._life_reset(seed)
        _, terminated, truncated = self._life_step(SECOND)
        obs = self.observe(out)  # FireResetEnv returns this frame even if it resets once more
        if terminated or truncated:
            self._life_reset(seed)
        return obs

    def step(self, index: int) -> tuple[float, bool, bool]:
        """One agent step with action ``index``: ``(raw reward, terminated, truncated)``, a life loss being
        ``terminated``; :meth:`observe` gives its frame, :attr:`game_ended` whether the game ended."""
        return self._life_step(index)

    @property
    def game_ended(self) -> bool:
        """Whether the last step ended the game itself (game over or time limit), not only a life."""
        return self._real_done

    @property
    def lives(self) -> int:
        return self.ale.lives()

    def observe(self, out: np.ndarray | None = None) -> np.ndarray:
        """``WarpFrame``: OpenCV gray of the current RGB observation, ``INTER_AREA`` resize."""
        if self._pooled:
            np.maximum(self._screens[0], self._screens[1], out=self._screen)
        else:
            self.ale.getScreenRGB(self._screen)
        cv2.cvtColor(self._screen, cv2.COLOR_RGB2GRAY, dst=self._gray)
        if out is None:
            out = np.empty((self.size, self.size), dtype=np.uint8)
        return cv2.resize(self._gray, (self.size, self.size), dst=out, interpolation=cv2.INTER_AREA)
