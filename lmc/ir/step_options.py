"""Check a step's `with name=value, ...` options and make its `StepOptions`.

Decoding options fit every module kind; `tools` and `max_iters` only `react`, which needs tools.
Each problem is reported at the option (or the step) and the rest still checked, so a file shows
every mistake at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from lmc.diagnostics import Diagnostics, Span, did_you_mean, quoted_list
from lmc.signatures import FINISH, FunctionSpec, SignatureSpec, StepOptions
from lmc.syntax import tree as ast

MAX_SAMPLES = 32
MAX_ITERS = 50
MAX_TOKENS = 32_768


@dataclass(frozen=True)
class _Option:
    """What one option takes, in words for messages, and how its value becomes a field."""

    expected: str
    take: Callable[[Any], Any | None]  # the field's value, or None if the value does not fit
    agents_only: bool = False


def _number_in(low: float, high: float) -> Callable[[Any], float | None]:
    def take(value: Any) -> float | None:
        fits = isinstance(value, int | float) and low <= value <= high
        return float(value) if fits else None

    return take


def _whole_in(low: int, high: int) -> Callable[[Any], int | None]:
    return lambda value: value if type(value) is int and low <= value <= high else None


OPTIONS: dict[str, _Option] = {
    "temperature": _Option("a number from 0 to 2", _number_in(0, 2)),
    "max_tokens": _Option(f"a whole number from 1 to {MAX_TOKENS}", _whole_in(1, MAX_TOKENS)),
    "n": _Option(f"a whole number of samples from 1 to {MAX_SAMPLES}", _whole_in(1, MAX_SAMPLES)),
    "max_iters": _Option(f"a whole number from 1 to {MAX_ITERS}", _whole_in(1, MAX_ITERS), True),
    "tools": _Option("a list of declared functions, [Search, Calculate]", lambda v: v, True),
}


def lower_options(
    call: ast.StepCall,
    signature: SignatureSpec,
    functions: Mapping[str, ast.FunctionDecl],
    diagnostics: Diagnostics,
) -> StepOptions:
    options = StepOptions()
    seen: dict[str, Span] = {}
    for option in call.options:
        spec = OPTIONS.get(option.name)
        if spec is None:
            names = list(OPTIONS)
            diagnostics.error(
                option.name_span,
                f"unknown option '{option.name}'; expected one of {quoted_list(names)}"
                + did_you_mean(option.name, names),
            )
            continue
        if option.name in seen:
            earlier = seen[option.name].line
            diagnostics.error(
                option.span, f"option '{option.name}' is given twice (line {earlier})"
            )
            continue
        seen[option.name] = option.span
        if spec.agents_only and call.module != "react":
            diagnostics.error(
                option.span,
                f"'{option.name}' is an agent's option; expected `react` for a step with tools",
            )
            continue
        if option.name == "tools":
            options = replace(options, tools=_tools(option, functions, diagnostics))
            continue
        value = spec.take(option.value) if not isinstance(option.value, tuple) else None
        if value is None:
            diagnostics.error(option.span, f"expected {spec.expected} for '{option.name}'")
            continue
        options = replace(options, **{option.name: value})
    if options.n > 1 and call.module == "react":
        diagnostics.error(
            seen["n"], "an agent is not sampled; expected `n` on predict or chain_of_thought steps"
        )
    elif options.n > 1 and not options.temperature:
        diagnostics.error(
            seen["n"],
            f"{options.n} samples at temperature 0 are one answer {options.n} times; expected "
            "a temperature above 0 too (say temperature=0.7)",
        )
    if call.module == "react" and "tools" not in seen:
        diagnostics.error(
            call.span,
            f"a react step needs tools: `react {signature.display_name}(...) with "
            "tools=[Search, ...]`, naming declared functions",
        )
    return options


def _tools(
    option: ast.StepOption, functions: Mapping[str, ast.FunctionDecl], diagnostics: Diagnostics
) -> tuple[FunctionSpec, ...]:
    if not isinstance(option.value, tuple) or not option.value:
        diagnostics.error(option.span, f"expected {OPTIONS['tools'].expected} for 'tools'")
        return ()
    tools: list[FunctionSpec] = []
    for name in option.value:
        decl = functions.get(name)
        if decl is None:
            known = list(functions)
            expected = (
                f"expected one of {quoted_list(known)}" + did_you_mean(name, known)
                if known
                else 'declare it: function NAME = "package.module:function" { ... }'
            )
            diagnostics.error(option.span, f"unknown tool '{name}'; {expected}")
        elif name == FINISH:
            diagnostics.error(option.span, f"'{FINISH}' is how an agent says it is done; rename it")
        elif any(t.name == name for t in tools):
            diagnostics.error(option.span, f"tool '{name}' is listed twice")
        else:
            tools.append(decl.function)
    return tuple(tools)
