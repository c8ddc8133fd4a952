"""Lower a program body's steps, and its calls of Python functions, to nodes of its graph.

A step's signature is resolved, its options and learned block checked (`step_options`,
`lower_learned`), and each argument checked against the signature's inputs and wired in as an
expression (`lower_expressions`). Statements (`lower_program`) build on this layer.
"""

from __future__ import annotations

import difflib

from lmc.diagnostics import Span, did_you_mean, quoted_list
from lmc.ir.graph import FunctionNode, StepNode
from lmc.ir.lower_expressions import ExpressionLowering, unknown_message
from lmc.ir.lower_learned import learned_params
from lmc.ir.lower_state import Call, Step
from lmc.ir.step_options import lower_options
from lmc.signatures import REASONING, SignatureSpec, check_signature
from lmc.syntax import tree as ast


class StepLowering(ExpressionLowering):
    """How steps and function calls are lowered; made only as part of `ProgramLowering`."""

    def resolve_signature(self, ref: ast.SignatureRef) -> SignatureSpec | None:
        """The signature a step runs; None (reported once, where it is wrong) if it is broken."""
        if ref.inline is not None:
            valid = ref.valid and check_signature(ref.inline, self.diagnostics)
            return ref.inline if valid else None
        assert ref.name is not None
        decl = self.signatures.get(ref.name)
        if decl is None:
            self.error(
                ref.span,
                unknown_message(
                    "signature",
                    ref.name,
                    self.signatures,
                    self.indexes,
                    'or write an inline "a -> b" string',
                ),
            )
            return None
        return None if ref.name in self.broken_signatures else decl.signature

    def step(self, call: ast.StepCall, node_id: str, key: str) -> Step | None:
        signature = self.resolve_signature(call.signature)
        if signature is None:
            for arg in call.args:
                self.expr(arg.value, None)
            return None
        if call.module == "chain_of_thought" and signature.output(REASONING) is not None:
            self.error(
                call.span,
                f"chain_of_thought adds a '{REASONING}' output, and {signature.display_name} "
                f"already declares one; use predict, or rename the field",
            )
        options = lower_options(call, signature, self.functions, self.diagnostics)
        node = StepNode(node_id, signature, call.module, key, options, span=call.span)
        self.graph.add(node)
        if call.learned is not None:
            self.learn(call.learned, node)
        self.arguments(call.args, signature, node_id, call.span)
        return Step(node_id, signature, call.module, key, options)

    def learn(self, learned: ast.Learned, step: StepNode) -> None:
        """Set the parameters a step's learned block gives; steps sharing them agree."""
        params = learned_params(learned, step, self.diagnostics)
        earlier = self.learned.setdefault(step.param_key, (params, learned.span))
        if earlier[0] != params:
            self.error(
                learned.span,
                f"'{step.param_key}' already learned other parameters at line "
                f"{earlier[1].line}; steps that share parameters give them once",
            )
        self.graph.params[step.param_key] = earlier[0]

    def call(self, call: ast.FunctionCall, target: str) -> Call | None:
        """`target = call FUNCTION(...)`: a node that runs the declared Python function."""
        decl = self.functions.get(call.function)
        if decl is None or call.function in self.broken_signatures:
            if decl is None:
                self.error(
                    call.function_span,
                    f"unknown function '{call.function}'"
                    + (
                        f"; expected {quoted_list(self.functions)}"
                        + did_you_mean(call.function, self.functions)
                        if self.functions
                        else '; declare it: function NAME = "package.module:function" { ... }'
                    ),
                )
            for arg in call.args:
                self.expr(arg.value, None)
            return None
        node_id = self.graph.fresh_id(target)
        self.graph.add(FunctionNode(node_id, decl.function, span=call.span))
        self.arguments(call.args, decl.signature, node_id, call.span)
        return Call(node_id, decl.signature)

    def reuse(self, call: ast.StepReuse, target: str) -> Step | None:
        """`target = step(...)`: another call of a bound step, reading its parameters."""
        bound = self.lookup(call.step, call.step_span)
        if not isinstance(bound, Step):
            if bound is not None:
                self.error(
                    call.step_span,
                    f"'{call.step}' is not a step; only a step can be called again, "
                    f"`{target} = STEP(...)`",
                )
            for arg in call.args:
                self.expr(arg.value, None)
            return None
        key = self.reused.setdefault(target, bound.key)
        if key != bound.key or (target in self.shared and target != bound.key):
            self.error(call.span, rebound_message(target))
        node_id = self.graph.fresh_id(target)
        self.graph.add(
            StepNode(
                node_id, bound.signature, bound.module, bound.key, bound.options, span=call.span
            )
        )
        self.arguments(call.args, bound.signature, node_id, call.span)
        return Step(node_id, bound.signature, bound.module, bound.key, bound.options)

    def arguments(
        self, args: tuple[ast.Arg, ...], signature: SignatureSpec, node_id: str, call_span: Span
    ) -> None:
        passed: dict[str, ast.Arg] = {}
        names = [f.name for f in signature.inputs]
        misspelled: set[str] = set()
        for arg in args:
            target = signature.input(arg.name)
            if target is None:
                misspelled.update(difflib.get_close_matches(arg.name, names, n=1, cutoff=0.6))
                self.error(
                    arg.span,
                    f"unknown argument '{arg.name}'; {signature.display_name} takes one of "
                    f"{quoted_list(names)}" + did_you_mean(arg.name, names),
                )
                self.expr(arg.value, None)
            elif arg.name in passed:
                self.error(arg.span, f"argument '{arg.name}' is passed twice")
            else:
                passed[arg.name] = arg
                self.flow(arg.value, target.type, node_id, arg.name, f"'{arg.name}'")
        # A misspelled argument is reported once, as unknown, not also as the one missing.
        missing = [n for n in names if n not in passed and n not in misspelled]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            self.error(
                call_span,
                f"missing argument{plural} {quoted_list(missing)}; "
                f"{signature.display_name} takes {', '.join(f'{n}=...' for n in names)}",
            )


def rebound_message(name: str) -> str:
    return (
        f"'{name}' is bound to calls of different steps; steps bound to one name share "
        "learnable parameters (use another name)"
    )
