"""Program text: parsing both forms, every rejection rule, rendering and normalisation."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from codeit.program import Line, Program, ProgramError, parse, parse_function, parse_lines

DATA = Path(os.environ.get("CODEIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "codeit-data")


def published_programs() -> list[str]:
    files = sorted((DATA / "training").glob("*.json"))
    if not files:
        pytest.skip(f"CodeIt data not found at {DATA} (set CODEIT_DATA to the folder with training/)")
    return [json.loads(f.read_text())["program"] for f in files]


def bare(function_text: str) -> str:
    """The program lines of a function, as dsl-spec §4.1 extracts them."""
    return "\n".join(line.strip() for line in function_text.split("\n") if line.count("=") == 1)


def test_all_published_programs_round_trip_in_both_forms():
    programs = published_programs()
    assert len(programs) == 400
    for text in programs:
        program = parse(text)
        assert program.to_function() == text
        lines = bare(text)
        from_lines = parse(lines)
        assert from_lines.to_lines() == lines
        assert from_lines == program  # equality ignores the function name
        assert from_lines.name is None and program.name == text[4:text.index("(")]
        assert program.normalise() == program  # the published programs have no dead lines


def test_function_and_lines_forms():
    text = "def solve_x(I):\n    x1 = vmirror(I)\n    O = hconcat(I, x1)\n    return O\n"
    program = parse_function(text)
    assert program.lines == (Line("x1", "vmirror", ("I",)), Line("O", "hconcat", ("I", "x1")))
    assert program.name == "solve_x"
    assert program.to_lines() == str(program) == "x1 = vmirror(I)\nO = hconcat(I, x1)"
    assert program.to_function("solve_y").startswith("def solve_y(I):\n    x1 = vmirror(I)\n")
    assert parse_lines("x1 = vmirror(I)\nO = hconcat(I, x1)\n\n") == program  # trailing newlines ok
    assert parse("  x1 = vmirror(I)  \r\n O = hconcat(I, x1)") == program  # surrounding blanks ok
    assert parse("O = vmirror(I)").to_function() == "def solve(I):\n    O = vmirror(I)\n    return O\n"


def test_function_values_and_constants_as_arguments():
    program = parse("x1 = rbind(shift, UNITY)\nx2 = x1(I)\nO = x2(ORIGIN)")
    assert program.lines[1] == Line("x2", "x1", ("I",))


@pytest.mark.parametrize(("text", "message"), [
    ("x1 = vmirror(I)\nx2 = hmirror(x1)\nx3 = foo(x2)\nO = vmirror(x3)",
     "line 3: unknown name 'foo' in 'x3 = foo(x2)'"),
    ("x1 = vmirror(I)\nO = hconcat(x1, bar)", "line 2: unknown name 'bar' in 'O = hconcat(x1, bar)'"),
    ("", "line 1: empty line"),
    ("x1 = vmirror(I)\n\nO = hmirror(x1)", "line 2: empty line"),
    ("x1=vmirror(I)\nO = hmirror(x1)", "line 1: expected 'variable = call' with spaces around '='"),
    ("x1 = x2 = vmirror(I)\nO = hmirror(x1)", "line 1: more than one ' = '"),
    ("O = vmirror(hmirror(I))", "line 1: expected exactly one call"),
    ("O = vmirror(I) ", None),  # trailing blanks are stripped: valid
    ("O = vmirror(I)x", "line 1: expected exactly one call"),
    ("O = vmirror", "line 1: expected exactly one call"),
    ("O = vmirror(I))", "line 1: expected exactly one call"),
    ("x1 = vmirror(I)", "line 1: the last line must assign 'O', not 'x1'"),
    ("O = vmirror(I)\nx1 = hmirror(O)", "line 1: 'O' may only be assigned on the last line"),
    ("vmirror = hmirror(I)\nO = vmirror(I)", "line 1: variable 'vmirror' shadows a primitive"),
    ("ONE = hmirror(I)\nO = vmirror(I)", "line 1: variable 'ONE' shadows a constant"),
    ("I = hmirror(I)\nO = vmirror(I)", "line 1: variable 'I' shadows the input"),
    ("x-1 = hmirror(I)\nO = vmirror(I)", "line 1: invalid variable name 'x-1'"),
    ("x1 = vmirror(I)\nx1 = hmirror(I)\nO = rot90(x1)", "line 2: variable 'x1' is already assigned on line 1"),
    ("x1 = vmirror(I)\nx2 = vmirror(I)\nO = hconcat(x1, x2)",
     "line 2: repeats the call 'vmirror(I)' of line 1 in 'x2 = vmirror(I)'"),
    ("x1 = vmirror(x2)\nx2 = hmirror(I)\nO = hconcat(x1, x2)", "line 1: unknown name 'x2'"),
    ("x1 = vmirror(x1)\nO = hmirror(x1)", "line 1: 'x1' is used on the line that assigns it"),
    ("x1 = x1(I)\nO = hmirror(x1)", "line 1: 'x1' is used on the line that assigns it"),
    ("O = add(ONE, 5)", "line 1: literal '5' (only names may be arguments)"),
    ("O = add(ONE, -1)", "line 1: literal '-1'"),
    ("O = vmirror()", "line 1: empty argument"),
    ("O = hconcat(I,I)", "line 1: arguments must be separated by ', ' (got 'I,I')"),
    ("O = hconcat(I,  I)", "line 1: arguments must be separated by ', ' (got ' I')"),
    ("O = hconcat(I, )", "line 1: empty argument"),
    ("O = ONE(I)", "line 1: 'ONE' is not a function"),
    ("O = I(I)", "line 1: 'I' is not a function"),
    ("O = foo(I)", "line 1: unknown name 'foo' in 'O = foo(I)'"),
    ("def solve(I)\n    O = vmirror(I)\n    return O\n", "line 1: expected 'def <name>(I):'"),
    ("def solve(x):\n    O = vmirror(x)\n    return O\n", "line 1: expected 'def <name>(I):'"),
    ("def solve(I):\n    O = vmirror(I)\n", "line 2: expected 'return O' as the last line"),
    ("def solve(I):\n    O = vmirror(I)\n    return O\nx = 1\n", "line 4: expected 'return O'"),
    ("def solve(I):\n    return O\n", "line 2: the function has no steps"),
    ("def solve(I):\n    x1 = vmirror(I)\n    x2 = foo(x1)\n    O = x2\n    return O\n",
     "line 3: unknown name 'foo' in 'x2 = foo(x1)'"),  # line numbers count the def line
    ("x1 = vmirror(I)\nreturn O", "line 2: expected 'variable = call'"),
])
def test_rejections_name_the_line_and_reason(text, message):
    if message is None:
        parse(text)
        return
    with pytest.raises(ProgramError) as info:
        parse(text)
    assert str(info.value).startswith(message), str(info.value)
    assert isinstance(info.value, ValueError)


def test_normalise_drops_dead_lines_and_renumbers():
    program = parse("x1 = vmirror(I)\nx2 = hmirror(I)\nx3 = rbind(hconcat, I)\nx4 = rot90(x2)\n"
                    "x5 = x3(x4)\nO = hconcat(x5, x4)")
    normal = program.normalise()
    assert normal.to_lines() == ("x1 = hmirror(I)\nx2 = rbind(hconcat, I)\nx3 = rot90(x1)\n"
                                 "x4 = x2(x3)\nO = hconcat(x4, x3)")
    assert normal.normalise() == normal
    assert parse(normal.to_lines()) == normal
    assert parse("x7 = vmirror(I)\nO = rot90(x7)").normalise().to_lines() == "x1 = vmirror(I)\nO = rot90(x1)"


def test_program_is_immutable_validated_and_hashable():
    program = parse("x1 = vmirror(I)\nO = rot90(x1)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        program.lines = ()
    assert Program.from_lines([("x1", "vmirror", ["I"]), ("O", "rot90", ["x1"])]) == program
    assert hash(Program.from_lines(program.lines, name="solve_a")) == hash(program)
    assert len(program) == 2 and {program, parse(program.to_lines())} == {program}
    with pytest.raises(ProgramError, match="unknown name 'x2'"):
        Program((Line("x1", "vmirror", ("I",)), Line("O", "rot90", ("x2",))))
    with pytest.raises(ProgramError):
        Program((Line("x1", "vmirror", ("I, I",)), Line("O", "rot90", ("x1",))))
    with pytest.raises(ProgramError, match="empty program"):
        Program(())
    with pytest.raises(ProgramError, match="invalid function name"):
        program.to_function("not a name")
