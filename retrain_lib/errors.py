"""The one error family for user mistakes: each message names the file, the value and the fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input.

    Attributes:
        file: the file (relative to the upload) or parameter the problem is about.
        message: what is wrong, naming the bad value.
        fix: what the user should do about it.
    """

    file: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}. Fix: {self.fix}"


class InputError(ValueError):
    """Bad user input: an archive, a dataset, an annotation or a parameter.

    Carries every problem found, so the user can fix them all in one go.
    """

    def __init__(self, problems: Problem | list[Problem]):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        if not self.problems:
            raise ValueError("InputError needs at least one problem")
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems found in the input:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def input_error(file: str, message: str, fix: str) -> InputError:
    """Builds an `InputError` with a single problem."""
    return InputError(Problem(file, message, fix))
