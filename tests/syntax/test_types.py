"""What may flow along an edge (`accepts`) and the type two values share (`join`)."""

from __future__ import annotations

import pytest

from lmc.types import (
    BOOL,
    EMPTY_LIST,
    FLOAT,
    INT,
    STR,
    UNKNOWN,
    ListOf,
    LmType,
    OneOf,
    OptionalOf,
    accepts,
    join,
)

AB = OneOf(("a", "b"))
ABC = OneOf(("a", "b", "c"))
EVERY_TYPE: list[LmType] = [
    STR,
    INT,
    FLOAT,
    BOOL,
    ListOf(STR),
    ListOf(ListOf(INT)),
    OptionalOf(INT),
    OptionalOf(ListOf(STR)),
    AB,
]


def flows(source: LmType, target: LmType) -> pytest.ParameterSet:
    return pytest.param(source, target, id=f"{source} into {target}")


@pytest.mark.parametrize(("source", "target"), [flows(t, STR) for t in EVERY_TYPE])
def test_any_value_flows_into_str(source: LmType, target: LmType) -> None:
    assert accepts(target, source)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        flows(INT, INT),
        flows(INT, FLOAT),
        flows(INT, OptionalOf(INT)),
        flows(OptionalOf(INT), OptionalOf(INT)),
        flows(INT, OptionalOf(FLOAT)),
        flows(ListOf(INT), ListOf(OptionalOf(INT))),
        flows(ListOf(INT), ListOf(FLOAT)),
        flows(ListOf(ListOf(STR)), ListOf(ListOf(STR))),
        flows(OneOf(("a",)), AB),
        flows(AB, ABC),
        flows(OneOf(("b", "a")), AB),
        flows(AB, OptionalOf(ABC)),
        flows(EMPTY_LIST, ListOf(STR)),
        flows(EMPTY_LIST, ListOf(ListOf(INT))),
        flows(EMPTY_LIST, OptionalOf(ListOf(BOOL))),
    ],
)
def test_flows(source: LmType, target: LmType) -> None:
    assert accepts(target, source)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        flows(FLOAT, INT),
        flows(STR, INT),
        flows(BOOL, INT),
        flows(INT, BOOL),
        flows(OptionalOf(INT), INT),
        flows(OptionalOf(INT), FLOAT),
        flows(OptionalOf(ListOf(STR)), ListOf(STR)),
        flows(ListOf(OptionalOf(INT)), ListOf(INT)),
        flows(ListOf(FLOAT), ListOf(INT)),
        flows(STR, ListOf(STR)),
        flows(INT, ListOf(INT)),
        flows(ListOf(STR), ListOf(ListOf(STR))),
        flows(ListOf(STR), INT),
        flows(STR, AB),
        flows(ABC, AB),
        flows(OneOf(("c",)), AB),
        flows(EMPTY_LIST, INT),
    ],
)
def test_does_not_flow(source: LmType, target: LmType) -> None:
    assert not accepts(target, source)


@pytest.mark.parametrize("other", [pytest.param(t, id=str(t)) for t in EVERY_TYPE])
def test_unknown_fits_everywhere(other: LmType) -> None:
    """An already reported error must not cause a second one where its value flows."""
    assert accepts(other, UNKNOWN)
    assert accepts(UNKNOWN, other)


def joins(left: LmType, right: LmType, expected: LmType | None) -> pytest.ParameterSet:
    return pytest.param(left, right, expected, id=f"{left} and {right}")


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        joins(INT, INT, INT),
        joins(INT, FLOAT, FLOAT),
        joins(FLOAT, INT, FLOAT),
        joins(INT, OptionalOf(INT), OptionalOf(INT)),
        joins(OptionalOf(INT), INT, OptionalOf(INT)),
        joins(ListOf(INT), ListOf(FLOAT), ListOf(FLOAT)),
        joins(ListOf(INT), ListOf(OptionalOf(INT)), ListOf(OptionalOf(INT))),
        joins(OneOf(("a",)), AB, AB),
        joins(AB, OneOf(("b", "c")), ABC),
        joins(EMPTY_LIST, ListOf(INT), ListOf(INT)),
        joins(ListOf(INT), EMPTY_LIST, ListOf(INT)),
        joins(UNKNOWN, INT, INT),
        joins(INT, UNKNOWN, INT),
        joins(STR, INT, None),
        joins(INT, STR, None),
        joins(AB, STR, STR),
        joins(INT, BOOL, None),
        joins(INT, ListOf(INT), None),
        joins(ListOf(INT), ListOf(BOOL), None),
    ],
)
def test_join(left: LmType, right: LmType, expected: LmType | None) -> None:
    assert join(left, right) == expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        joins(OptionalOf(STR), INT, None),
        joins(ListOf(STR), ListOf(INT), None),
    ],
)
def test_join_never_turns_a_value_into_text(
    left: LmType, right: LmType, expected: LmType | None
) -> None:
    assert join(left, right) == expected
