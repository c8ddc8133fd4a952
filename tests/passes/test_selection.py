"""How passes choose: a race spends runs on the candidates still in it, and a change is kept
only when its paired gain holds (the interval's low end above zero, on enough examples)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from lmc.passes.selection import paired_gain, race_runs, shares

scores = st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=1, max_size=40)


@given(scores, st.integers(min_value=0, max_value=10**6))
def test_the_mean_gain_lies_in_its_interval(before: list[float], seed: int) -> None:
    after = random.Random(seed).sample(before, len(before))
    gain = paired_gain(before, after, random.Random(seed))

    assert gain.low <= gain.mean <= gain.high


def test_a_program_against_itself_gains_nothing_and_that_does_not_hold() -> None:
    same = [1.0, 0.0, 1.0, 1.0]
    gain = paired_gain(same, same, random.Random(0))

    assert (gain.mean, gain.low, gain.high) == (0.0, 0.0, 0.0)
    assert not gain.holds()


def test_a_gain_on_most_examples_holds_and_one_lucky_example_does_not() -> None:
    before = [0.0] * 30
    broad = [1.0] * 12 + [0.0] * 18
    lucky = [1.0] + [0.0] * 29

    assert paired_gain(before, broad, random.Random(0)).holds()
    assert not paired_gain(before, lucky, random.Random(0)).holds()


def test_too_few_dev_examples_cannot_show_a_gain_however_clean() -> None:
    # Every resample of four wins agrees, so the interval is [+1, +1]; yet four wins in four is
    # what luck gives one time in sixteen. Five is the least a gain can hold on.
    four = paired_gain([0.0] * 4, [1.0] * 4, random.Random(0))
    five = paired_gain([0.0] * 5, [1.0] * 5, random.Random(0))

    assert (four.low, four.high) == (1.0, 1.0)
    assert not four.holds()
    assert "a difference on 4 of 4 dev examples (too few to tell: 5 at least)" in str(four)
    assert five.holds()
    assert str(five) == "+1.000 [+1.000, +1.000]"


def test_ties_do_not_make_a_few_wins_a_gain() -> None:
    # Four wins among fifty: a resample draws none of them only 1.5% of the time, so the
    # interval is above zero; but the programs differ on four examples, as luck gives 1 in 16.
    four = paired_gain([0.0] * 50, [1.0] * 4 + [0.0] * 46, random.Random(0))
    five = paired_gain([0.0] * 50, [1.0] * 5 + [0.0] * 45, random.Random(0))

    assert four.low > 0
    assert not four.holds()
    assert "a difference on 4 of 50 dev examples (too few to tell" in str(four)
    assert five.holds()


def test_a_loss_on_some_examples_weighs_against_gains_on_others() -> None:
    before = [1.0] * 5 + [0.0] * 25
    after = [0.0] * 5 + [1.0] * 6 + [0.0] * 19  # 5 lost, 6 won

    gain = paired_gain(before, after, random.Random(0))

    assert round(gain.mean, 3) == round(1 / 30, 3)
    assert not gain.holds()


def test_a_race_doubles_its_share_and_halves_its_field() -> None:
    assert shares(30) == [8, 16, 30]
    assert shares(5) == [5]
    # 4 candidates on 8, 2 on the next 8, 1 on the last 14: 62 runs, not 4 x 30
    assert race_runs(4, 30) == 4 * 8 + 2 * 8 + 1 * 14
    assert race_runs(1, 30) == 30
    assert race_runs(3, 2) == 3 * 2
