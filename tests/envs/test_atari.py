"""The Atari protocol (README, "Atari protocol and backends") on real ROMs, for every backend (ale
worker processes, gymnasium wrappers, ale-py's C++ vector env).

Every scenario plays real games with a seeded random policy; the expected values (raw returns,
sign-clipped rewards, life counts) are recomputed here from the raw per-step data rather than taken
from the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, VectorEnv

from lit_rl.envs.episode_info import final_observations, finished_episodes
from lit_rl.envs.factory import make_vector_env
from lit_rl.envs.options import AtariOptions

BREAKOUT = "BreakoutNoFrameskip-v4"  # 5 lives, needs FIRE, 1 point per lower brick
PONG = "PongNoFrameskip-v4"  # no lives, rewards ±1, long games
SPACE_INVADERS = "SpaceInvadersNoFrameskip-v4"  # 3 lives, 5-30 points per invader
BREAKOUT_LIVES = 5
SPACE_INVADERS_LIVES = 3
MAX_STEPS = 3_000  # safety cap; a random game of these titles lasts a few hundred agent steps

atari = pytest.mark.atari


@dataclass
class Play:
    """Everything one env returned while playing a fixed action sequence."""

    obs: list[np.ndarray] = field(default_factory=list)  # obs[0] from reset, obs[t + 1] after step t
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[np.ndarray] = field(default_factory=list)
    terminated: list[np.ndarray] = field(default_factory=list)
    truncated: list[np.ndarray] = field(default_factory=list)
    lives: list[np.ndarray] = field(default_factory=list)
    # (step, env index, reported return, reported length) of every finished episode
    episodes: list[tuple[int, int, float, int]] = field(default_factory=list)

    def arrays(self, name: str) -> np.ndarray:
        return np.stack(getattr(self, name))

    def first_game_end(self, env: int) -> int:
        """The step at which env ``env`` reported its first finished episode."""
        return next(step for step, i, _, _ in self.episodes if i == env)

    def episode_at(self, step: int, env: int) -> tuple[float, int]:
        return next((r, n) for s, i, r, n in self.episodes if s == step and i == env)


def random_actions(env: VectorEnv, seed: int, steps: int = MAX_STEPS) -> np.ndarray:
    return np.random.default_rng(seed).integers(env.single_action_space.n, size=(steps, env.num_envs))


def play(env: VectorEnv, actions: np.ndarray, *, seed: int, until_game_over: bool = False) -> Play:
    """Reset ``env`` with ``seed`` and step it with ``actions`` (stopping once every env has ended a game)."""
    out = Play()
    obs, _ = env.reset(seed=seed)
    out.obs.append(obs)
    done = np.zeros(env.num_envs, dtype=bool)
    for t, action in enumerate(actions):
        obs, reward, terminated, truncated, info = env.step(action)
        out.obs.append(obs)
        out.actions.append(action)
        out.rewards.append(np.asarray(reward, dtype=np.float64))
        out.terminated.append(np.asarray(terminated, dtype=bool))
        out.truncated.append(np.asarray(truncated, dtype=bool))
        out.lives.append(np.asarray(info["lives"], dtype=np.int64))
        idx, returns, lengths = finished_episodes(info)
        out.episodes += [(t, int(i), float(r), int(n)) for i, r, n in zip(idx, returns, lengths, strict=True)]
        done[idx] = True
        if until_game_over and done.all():
            return out
    if until_game_over:
        raise AssertionError(f"no game over within {len(actions)} steps")
    return out


def make(env_id: str, backend: str, num_envs: int = 1, **options) -> VectorEnv:
    return make_vector_env(env_id, num_envs=num_envs, backend=backend, atari=AtariOptions(**options))


@pytest.fixture(scope="module", params=["ale", "gymnasium", "ale_vector"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def breakout(backend: str):
    """Two Breakout envs with the default (training) protocol, played until both had a game over."""
    env = make(BREAKOUT, backend, num_envs=2)
    run = play(env, random_actions(env, seed=0), seed=0, until_game_over=True)
    yield env, run
    env.close()


@pytest.fixture(scope="module")
def pong(backend: str) -> Play:
    """One Pong env with the default protocol, 60 random steps."""
    env = make(PONG, backend)
    run = play(env, random_actions(env, seed=0, steps=60), seed=0)
    env.close()
    return run


@pytest.fixture(scope="module")
def space_invaders(backend: str) -> tuple[Play, Play]:
    """The same SpaceInvaders game (same seed and actions) with clipped and with raw rewards."""
    clipped_env = make(SPACE_INVADERS, backend)
    raw_env = make(SPACE_INVADERS, backend, clip_reward=False)
    actions = random_actions(clipped_env, seed=0)
    clipped = play(clipped_env, actions, seed=0, until_game_over=True)
    raw = play(raw_env, actions[: len(clipped.actions)], seed=0)
    clipped_env.close()
    raw_env.close()
    return clipped, raw


# --- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"frame_skip": 0},
        {"screen_size": 0},
        {"frame_stack": 0},
        {"max_episode_frames": 0},
        {"noop_max": -1},
        {"sticky_action_prob": 1.0},
        {"sticky_action_prob": -0.1},
    ],
)
def test_atari_options_reject_invalid_values(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        AtariOptions(**bad)


def test_for_evaluation_only_disables_clipping() -> None:
    """Evaluation keeps what the agent sees (life-loss handling included), as RL Zoo's EvalCallback."""
    options = AtariOptions(frame_skip=3, noop_max=7, sticky_action_prob=0.25, full_action_space=True)
    evaluation = options.for_evaluation()
    assert evaluation == replace(options, clip_reward=False)
    assert (options.terminal_on_life_loss, options.clip_reward) == (True, True)


# --- observations and spaces ---------------------------------------------------------------------


@atari
def test_observations_are_uint8_stacks_of_four_84x84_frames(breakout) -> None:
    env, run = breakout
    assert env.single_observation_space.shape == (4, 84, 84)
    assert env.single_observation_space.dtype == np.uint8
    obs = run.arrays("obs")
    assert obs.dtype == np.uint8
    assert obs.shape[1:] == (2, 4, 84, 84)
    assert obs.max() > obs.min()  # real frames, not a constant placeholder


@atari
def test_frame_stack_and_screen_size_set_the_observation_shape(backend: str) -> None:
    env = make(PONG, backend, frame_stack=2, screen_size=64)
    run = play(env, random_actions(env, seed=0, steps=30), seed=0)
    env.close()
    assert env.single_observation_space.shape == (2, 64, 64)
    obs = run.arrays("obs")
    assert obs.shape == (31, 1, 2, 64, 64)
    assert obs.dtype == np.uint8
    # Each step pushes one new frame: the older frames are the previous stack shifted by one.
    np.testing.assert_array_equal(obs[1:, :, 0], obs[:-1, :, 1])
    assert not np.array_equal(obs[1:, :, 1], obs[:-1, :, 1])  # and the new frames do change


@atari
def test_autoreset_mode_is_same_step(breakout) -> None:
    env, _ = breakout
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP


@atari
@pytest.mark.parametrize(
    ("env_id", "full_action_space", "num_actions"), [(BREAKOUT, False, 4), (PONG, False, 6), (BREAKOUT, True, 18)]
)
def test_action_set_sizes(backend: str, env_id: str, full_action_space: bool, num_actions: int) -> None:
    env = make(env_id, backend, full_action_space=full_action_space)
    env.close()
    assert env.single_action_space.n == num_actions
    assert env.action_space.shape == (1,)


@atari
def test_fire_reset_launches_the_ball(backend: str) -> None:
    # Breakout waits for FIRE: with NOOP-only actions a life is lost only if the reset pressed FIRE.
    noops = np.zeros((60, 1), dtype=np.int64)
    lives = {}
    for fire_reset in (True, False):
        env = make(BREAKOUT, backend, fire_reset=fire_reset)
        lives[fire_reset] = play(env, noops, seed=0).arrays("lives")[:, 0]
        env.close()
    assert lives[True].min() < BREAKOUT_LIVES
    np.testing.assert_array_equal(lives[False], np.full(len(noops), BREAKOUT_LIVES))


# --- rewards and returns -------------------------------------------------------------------------


@atari
def test_training_rewards_are_sign_clipped(space_invaders: tuple[Play, Play]) -> None:
    clipped, raw = space_invaders
    clipped_rewards, raw_rewards = clipped.arrays("rewards"), raw.arrays("rewards")
    assert set(np.unique(clipped_rewards)) <= {-1.0, 0.0, 1.0}
    assert raw_rewards.max() > 1  # the game did score points worth more than 1
    np.testing.assert_array_equal(clipped_rewards, np.sign(raw_rewards))


@atari
def test_reported_return_is_the_raw_full_game_score(space_invaders: tuple[Play, Play]) -> None:
    clipped, raw = space_invaders
    end = clipped.first_game_end(0)
    # Clipping does not change the game: the raw env ends its game at the same step.
    assert raw.first_game_end(0) == end
    raw_score = raw.arrays("rewards")[: end + 1, 0].sum()  # reference: sum of the raw per-step rewards
    clipped_return, clipped_length = clipped.episode_at(end, 0)
    raw_return, raw_length = raw.episode_at(end, 0)
    assert clipped_return == raw_score
    assert raw_return == raw_score
    assert clipped_length == raw_length
    assert clipped_return > clipped.arrays("rewards")[: end + 1, 0].sum()  # more than the clipped sum
    # The game spanned all lives: each life loss was a training terminal in both envs.
    for run in (clipped, raw):
        assert run.arrays("terminated")[: end + 1, 0].sum() == SPACE_INVADERS_LIVES


# --- life loss, game over, evaluation ------------------------------------------------------------


@atari
def test_life_loss_ends_the_training_episode_but_not_the_game(breakout) -> None:
    _, run = breakout
    terminated, lives = run.arrays("terminated"), run.arrays("lives")
    assert not run.arrays("truncated").any()
    for env in range(2):
        end = run.first_game_end(env)
        terminals = np.flatnonzero(terminated[: end + 1, env])
        # One training terminal per life; the reported (full) episode only at the last one.
        assert len(terminals) == BREAKOUT_LIVES
        assert terminals[-1] == end
        assert [step for step, i, _, _ in run.episodes if i == env and step <= end] == [end]
        # Before the game over, each terminal is a life loss and the same game goes on.
        np.testing.assert_array_equal(lives[terminals[:-1], env], np.arange(BREAKOUT_LIVES - 1, 0, -1))
        # The reported length covers the whole game, not the last life. (The gymnasium stack also
        # counts the FIRE/UP steps of its resets and the no-op after each life loss.)
        _, length = run.episode_at(end, env)
        game_steps = end + 1
        assert game_steps <= length <= game_steps + 3 * BREAKOUT_LIVES


@atari
def test_without_life_loss_terminal_terminated_only_at_game_over(backend: str) -> None:
    env = make(BREAKOUT, backend, terminal_on_life_loss=False)
    run = play(env, random_actions(env, seed=1), seed=1, until_game_over=True)
    env.close()
    end = run.first_game_end(0)
    terminated, lives = run.arrays("terminated")[:, 0], run.arrays("lives")[:, 0]
    np.testing.assert_array_equal(np.flatnonzero(terminated), [end])
    assert lives[:end].min() == 1  # lives were lost on the way without ending the episode
    assert lives[0] == BREAKOUT_LIVES


@atari
def test_evaluation_env_scores_full_games_with_raw_rewards(backend: str) -> None:
    env = make_vector_env(SPACE_INVADERS, num_envs=1, backend=backend, atari=AtariOptions(), evaluation=True)
    run = play(env, random_actions(env, seed=2), seed=2, until_game_over=True)
    env.close()
    end = run.first_game_end(0)
    terminated, rewards, lives = run.arrays("terminated")[:, 0], run.arrays("rewards")[:, 0], run.arrays("lives")[:, 0]
    # Life losses end the agent's episode as in training, but only the game over is scored.
    assert terminated[:end].sum() == SPACE_INVADERS_LIVES - 1 and terminated[end]
    assert lives[:end].min() < SPACE_INVADERS_LIVES
    assert [step for step, *_ in run.episodes] == [end]
    assert rewards.max() > 1  # not clipped
    reported_return, _ = run.episode_at(end, 0)
    assert reported_return == rewards[: end + 1].sum()


# --- truncation ----------------------------------------------------------------------------------


@atari
def test_frame_limit_truncates_without_terminating(backend: str) -> None:
    max_frames = 400
    env = make(PONG, backend, num_envs=2, noop_max=0, max_episode_frames=max_frames)
    actions = random_actions(env, seed=0, steps=max_frames)
    obs, _ = env.reset(seed=0)
    score = np.zeros(2)
    for t, action in enumerate(actions):
        prev = obs
        obs, reward, terminated, truncated, info = env.step(action)
        score += reward
        assert not terminated.any()  # nobody wins a Pong game this quickly
        if truncated.any():
            steps = t + 1
            break
    else:
        pytest.fail(f"no truncation within {len(actions)} steps")
    env.close()
    # No no-op starts: both envs hit the frame limit at the same step, within max_frames / frame_skip.
    np.testing.assert_array_equal(truncated, [True, True])
    assert max_frames // 4 - 5 <= steps <= max_frames // 4
    idx, returns, lengths = finished_episodes(info)
    np.testing.assert_array_equal(idx, [0, 1])
    np.testing.assert_array_equal(returns, score)  # Pong scores ±1: clipped and raw rewards agree
    assert np.all((lengths >= steps) & (lengths <= max_frames // 4))
    np.testing.assert_array_equal(info["_final_obs"], [True, True])
    final = final_observations(info, idx)
    assert final.shape == (2, 4, 84, 84)
    assert final.dtype == np.uint8
    # The final observation continues the previous stack; the returned one starts the next episode.
    np.testing.assert_array_equal(final[:, :-1], prev[:, 1:])
    assert not np.array_equal(final, obs)


# --- sticky actions, env ids, seeding ------------------------------------------------------------


@atari
def test_sticky_actions_change_the_dynamics(backend: str, pong: Play) -> None:
    reference = pong
    env = make(PONG, backend, sticky_action_prob=0.25)
    run = play(env, reference.arrays("actions"), seed=0)
    env.close()
    obs, ref_obs = run.arrays("obs"), reference.arrays("obs")
    assert obs.shape == ref_obs.shape
    assert obs.dtype == np.uint8
    assert not np.array_equal(obs, ref_obs)  # same seed and actions, different game


@atari
@pytest.mark.parametrize("env_id", ["ALE/Pong-v5", "Pong-v4"])
def test_env_id_only_selects_the_game(backend: str, pong: Play, env_id: str) -> None:
    # ALE/Pong-v5 defaults to frame skip 4 and sticky actions 0.25, Pong-v4 to a random frame skip
    # in [2, 5); AtariOptions overrides them, so both play PongNoFrameskip-v4's game.
    reference = pong
    env = make_vector_env(env_id, num_envs=1, backend=backend)
    run = play(env, reference.arrays("actions"), seed=0)
    env.close()
    np.testing.assert_array_equal(run.arrays("obs"), reference.arrays("obs"))
    np.testing.assert_array_equal(run.arrays("rewards"), reference.arrays("rewards"))


@atari
def test_same_seed_and_actions_give_identical_games(backend: str, breakout) -> None:
    _, reference = breakout
    steps = 200
    actions = reference.arrays("actions")[:steps]
    env = make(BREAKOUT, backend, num_envs=2)
    run = play(env, actions, seed=0)
    assert reference.arrays("terminated")[:steps].any()  # the replay crosses a life loss
    np.testing.assert_array_equal(run.arrays("obs"), reference.arrays("obs")[: steps + 1])
    np.testing.assert_array_equal(run.arrays("rewards"), reference.arrays("rewards")[:steps])
    np.testing.assert_array_equal(run.arrays("terminated"), reference.arrays("terminated")[:steps])
    # Another seed gives another game (no-op starts and emulator seed differ).
    other = play(env, actions[:50], seed=1)
    env.close()
    assert not np.array_equal(other.arrays("obs"), reference.arrays("obs")[:51])
