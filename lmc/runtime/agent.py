"""Running a `react` step: an agent that thinks, calls a tool, reads what it returned, and repeats.

Each iteration is one LM call whose reply is held to a shape: a thought, then one call of one of
the step's tools (`{"tool": NAME, "args": {...}}`, the name one of the tools or `finish`, the
arguments typed as the tool declares them), so even a small model cannot write a call the runtime
cannot make. The tool runs; what it returns, or the error it raised, is the observation the next
iteration reads. `finish`, or `max_iters` iterations, ends the loop, and one more call reads the
trajectory and writes the step's declared outputs (DSPy's ReAct and its `extract` step).

The step's learned parameters are shared by both kinds of call: its instruction is the task both
are told, and each demo is a whole worked run (inputs, the trajectory, outputs), shown to the
iterations as the turns it took and to the last call as the trajectory it read.
"""

from __future__ import annotations

import json
from typing import Any

from lmc.backends.base import StepView
from lmc.backends.schema import render_value
from lmc.errors import LmcError
from lmc.ir.graph import Demo, FunctionNode, StepNode, StepParams
from lmc.runtime.context import RunContext
from lmc.runtime.functions import FunctionFailed, call_function
from lmc.runtime.steps import call_step
from lmc.signatures import FINISH, TRAJECTORY, FieldSpec, FunctionSpec, SignatureSpec
from lmc.types import STR, ToolCall

THOUGHT, ACTION = "thought", "action"
# An observation longer than this is cut: a small model's context holds a few of them.
MAX_OBSERVATION = 1200
NOTHING_YET = "Nothing yet: this is the first turn."

# One turn of a trajectory, as demos keep it and traces show it:
# {"thought": str, "tool": str, "args": {...}, "observation": JSON value}
Turn = dict[str, Any]


def run_agent(
    context: RunContext,
    node: StepNode,
    params: StepParams,
    inputs: dict[str, Any],
    record: int | None,
) -> dict[str, Any]:
    """The agent's declared outputs for `inputs`, after at most `max_iters` tool calls. Its
    trajectory is traced whether it answers or fails: the turns it took before an LM call, a
    tool or the last call failed are work done, and the trace shows them with the error."""
    trajectory: list[Turn] = []
    try:
        outputs = _act_then_answer(context, node, params, inputs, record, trajectory)
    except Exception as error:
        _trace(context, node, inputs, record, trajectory, _failure(error))
        raise
    _trace(context, node, inputs, record, trajectory, None)
    if context.on_step is not None:
        context.on_step(record, node.id, inputs, {TRAJECTORY: trajectory, **outputs})
    return outputs


def _act_then_answer(
    context: RunContext,
    node: StepNode,
    params: StepParams,
    inputs: dict[str, Any],
    record: int | None,
    trajectory: list[Turn],
) -> dict[str, Any]:
    """The loop, each turn appended to `trajectory` as it is done, then the last call."""
    acting, extracting = act_view(node, params), extract_view(node, params)
    for _ in range(node.options.max_iters):
        values = {**inputs, TRAJECTORY: render_trajectory(trajectory)}
        decided = call_step(
            context, node.id, acting, values, record, options=node.options, observe=False
        )
        call = decided[ACTION]
        turn: Turn = {THOUGHT: decided[THOUGHT], "tool": call["tool"], "args": call["args"]}
        if call["tool"] == FINISH:
            trajectory.append({**turn, "observation": "done"})
            break
        tool = node.options.tool(call["tool"])
        assert tool is not None  # the reply was held to the tools' names
        trajectory.append({**turn, "observation": _observe(context, node, tool, call, record)})
    values = {**inputs, TRAJECTORY: render_trajectory(trajectory)}
    return call_step(
        context, node.id, extracting, values, record, options=node.options, observe=False
    )


def _trace(
    context: RunContext,
    node: StepNode,
    inputs: dict[str, Any],
    record: int | None,
    turns: list[Turn],
    error: str | None,
) -> None:
    if context.trace is not None:
        context.trace.trajectory(
            record=record, step=node.id, inputs=inputs, turns=turns, error=error
        )


def _failure(error: Exception) -> str:
    """What a failed agent's trajectory says it failed with: lmc's own errors as they read."""
    return str(error) if isinstance(error, LmcError) else f"{type(error).__name__}: {error}"


def _observe(
    context: RunContext,
    node: StepNode,
    tool: FunctionSpec,
    call: dict[str, Any],
    record: int | None,
) -> Any:
    """What the tool returned (its one result, or its results by name), or its error: an agent
    reads a failed call and may try another, so a tool's exception does not fail the step."""
    step = FunctionNode(f"{node.id}.{tool.name}", tool)
    try:
        results = call_function(context, step, call["args"], record)
    except FunctionFailed as failed:
        return f"error: {failed.message}"
    return next(iter(results.values())) if len(results) == 1 else results


# The two kinds of call ----------------------------------------------------------------------------


def _task(node: StepNode, params: StepParams) -> str:
    signature = node.signature
    if params.instruction is not None:
        return params.instruction
    if signature.instruction is not None:
        return signature.instruction
    inputs = ", ".join(f"`{f.name}`" for f in signature.inputs)
    outputs = ", ".join(f"`{f.name}`" for f in signature.outputs)
    return f"Given the fields {inputs}, produce the fields {outputs}."


def _tool_line(number: int, tool: FunctionSpec) -> str:
    params = ", ".join(f"{f.name}: {f.type}" for f in tool.signature.inputs)
    about = tool.signature.instruction or ""
    return f"({number}) {tool.name}({params})" + (f": {about}" if about else "")


def act_view(node: StepNode, params: StepParams) -> StepView:
    """One iteration: the inputs and the trajectory so far in; a thought and a tool call out."""
    tools = node.options.tools
    outputs = ", ".join(f"`{f.name}`" for f in node.signature.outputs)
    lines = [
        _task(node, params),
        "",
        "You are an agent. Each turn, write a thought about what you know and what you still "
        "need, then call one tool; what it returns is added to the trajectory. When you know "
        f"enough to produce {outputs}, call `{FINISH}`. The tools:",
        *(_tool_line(i, tool) for i, tool in enumerate(tools, 1)),
        f"({len(tools) + 1}) {FINISH}(): say that you are done.",
    ]
    shapes = tuple((t.name, tuple((f.name, f.type) for f in t.signature.inputs)) for t in tools)
    signature = SignatureSpec(
        node.signature.name,
        (*node.signature.inputs, _trajectory_field()),
        (
            FieldSpec(THOUGHT, STR, "What you know so far and what to do next."),
            FieldSpec(ACTION, ToolCall((*shapes, (FINISH, ()))), "The tool to call next."),
        ),
        "\n".join(lines),
    )
    demos = tuple(d for demo in params.demos for d in _turn_demos(demo, node.signature))
    return StepView(signature, "predict", StepParams(None, demos))


def extract_view(node: StepNode, params: StepParams) -> StepView:
    """The last call: the inputs and the whole trajectory in; the declared outputs out."""
    instruction = (
        _task(node, params) + "\n\nThe trajectory shows what was found by calling tools; "
        "produce the output fields from it."
    )
    signature = SignatureSpec(
        node.signature.name,
        (*node.signature.inputs, _trajectory_field()),
        node.signature.outputs,
        instruction,
    )
    demos = tuple(d for demo in params.demos if (d := _final_demo(demo)) is not None)
    return StepView(signature, "predict", StepParams(None, demos))


def _trajectory_field() -> FieldSpec:
    return FieldSpec(TRAJECTORY, STR, "The thoughts, tool calls and observations so far.")


def render_trajectory(turns: list[Turn]) -> str:
    if not turns:
        return NOTHING_YET
    lines: list[str] = []
    for i, turn in enumerate(turns, 1):
        args = json.dumps(turn.get("args", {}), ensure_ascii=False)
        observation = render_value(turn.get("observation"))
        if len(observation) > MAX_OBSERVATION:
            observation = observation[:MAX_OBSERVATION] + " …"
        lines += [
            f"Thought {i}: {turn.get(THOUGHT, '')}",
            f"Action {i}: {turn.get('tool')}({args})",
            f"Observation {i}: {observation}",
        ]
    return "\n".join(lines)


# Demos: a whole worked run, seen by each kind of call as its own kind of example --------------


def _turns(demo: Demo) -> list[Turn] | None:
    turns = dict(demo.fields).get(TRAJECTORY)
    if isinstance(turns, list) and all(isinstance(t, dict) for t in turns):
        return turns
    return None


def _turn_demos(demo: Demo, signature: SignatureSpec) -> list[Demo]:
    """One example per turn of a worked run: the trajectory before it in, the turn out."""
    turns = _turns(demo)
    values = dict(demo.fields)
    if turns is None or any(f.name not in values for f in signature.inputs):
        return []
    inputs = [(f.name, values[f.name]) for f in signature.inputs]
    demos = []
    for i, turn in enumerate(turns):
        action = {"tool": turn.get("tool"), "args": turn.get("args", {})}
        fields = (
            *inputs,
            (TRAJECTORY, render_trajectory(turns[:i])),
            (THOUGHT, turn.get(THOUGHT, "")),
            (ACTION, action),
        )
        demos.append(Demo(tuple(fields)))
    return demos


def _final_demo(demo: Demo) -> Demo | None:
    turns = _turns(demo)
    if turns is None:
        return None
    fields = [(k, v) for k, v in demo.fields if k != TRAJECTORY]
    return Demo((*fields, (TRAJECTORY, render_trajectory(turns))))
