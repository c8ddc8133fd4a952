"""Python functions the tests' `.lmp` programs call (`function F = "pyfunctions:NAME" {...}`)."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass


def count_words(text: str) -> int:
    return len(text.split())


def refuse(text: str) -> int:
    raise ValueError(f"cannot count {text!r}")


def count_unless_b(text: str) -> int:
    if "b" in text:
        sys.exit(3)  # as a script's helper might: it fails its record, not the run
    return len(text.split())


def not_a_number(text: str) -> str:
    return "many"


def split_name(name: str) -> tuple[str, str]:
    first, _, last = name.partition(" ")
    return first, last


@dataclass
class Stats:
    words: int
    letters: int


def stats(text: str) -> Stats:
    return Stats(len(text.split()), sum(c.isalpha() for c in text))


# Two calls that each wait for the other: they finish only if they run at the same time.
MEETING = threading.Barrier(2, timeout=10)


def meet(text: str) -> str:
    MEETING.wait()
    return text.upper()


# An agent's tools (tests/runtime/test_agent.py).


def add(a: float, b: float) -> float:
    return a + b


def capital(country: str) -> str:
    capitals = {
        "france": "Paris",
        "italy": "Rome",
        "germany": "Berlin",
        "japan": "Tokyo",
        "egypt": "Cairo",
        "peru": "Lima",
    }
    if country.lower() not in capitals:
        raise KeyError(f"no capital known for {country}")
    return capitals[country.lower()]


def capital_or_exit(country: str) -> str:
    if country.lower() == "atlantis":
        sys.exit(f"no capital known for {country}")
    return capital(country)
