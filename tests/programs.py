"""Small `.lmp` programs many tests run: one source, so a change of syntax is made once."""

QA = """\
signature Answer = "question -> answer"

program QA(question: str) -> (answer: str) {
    gen = predict Answer(question=question)
    return answer = gen.answer
}
"""

# QA with the metric a compile or an eval of it uses when none is given
QA_WITH_METRIC = QA + "\nmetric exact_match(answer)\n"

TWICE = """\
signature Double = "n: int -> doubled: int"

program Twice(n: int) -> (doubled: int) {
    d = predict Double(n=n)
    return doubled = d.doubled
}
"""
