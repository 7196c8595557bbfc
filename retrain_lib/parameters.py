"""Job parameters: read from the stage notebooks' `parameters` cells, checked before anything runs.

The parameters cell is the one place defaults live. A parameter's comment may start with a
constraint: `[low, high]` for numbers, `{"a", "b"}` for choices, e.g.
`epochs: int = 20  # [1, 500] passes over the training set`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from retrain_lib.errors import InputError, Problem

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
STAGES = ("01_upload", "02_train", "03_convert", "04_package")
JOB_PARAMETERS = ("job_dir", "data_path", "task")
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
_CONSTRAINT = re.compile(r"^\s*(\[[^\]]*\]|\{[^}]*\})\s*(.*)$")


@dataclass(frozen=True)
class ParameterSpec:
    """One declared parameter of a stage notebook."""

    name: str
    type_name: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None

    def describe(self) -> str:
        if self.choices:
            allowed = "one of " + ", ".join(map(repr, self.choices))
        elif self.low is not None:
            allowed = f"a {self.type_name} from {self.low} to {self.high}"
        else:
            allowed = f"a {self.type_name}"
        return f"{self.name} ({allowed}; default {self.default!r}): {self.help}"


def notebook_path(stage: str) -> Path:
    return NOTEBOOK_DIR / f"{stage}.ipynb"


@cache
def stage_parameters(stage: str) -> dict[str, ParameterSpec]:
    """The parameters a stage notebook declares, with types, defaults and constraints."""
    import papermill

    specs = {}
    for name, raw in papermill.inspect_notebook(str(notebook_path(stage))).items():
        help_text = raw.get("help", "")
        low = high = choices = None
        match = _CONSTRAINT.match(help_text)
        if match:
            bound = ast.literal_eval(match.group(1))
            if isinstance(bound, list):
                low, high = bound
            else:
                choices = tuple(sorted(bound))
            help_text = match.group(2)
        specs[name] = ParameterSpec(name, raw["inferred_type_name"], ast.literal_eval(raw["default"]),
                                    help_text, low, high, choices)
    return specs


def all_parameters(stages: tuple[str, ...] = STAGES) -> dict[str, ParameterSpec]:
    """Every parameter of the given stages (a name shared by stages appears once)."""
    merged: dict[str, ParameterSpec] = {}
    for stage in stages:
        merged.update(stage_parameters(stage))
    return merged


def stage_defaults(stage: str) -> dict[str, Any]:
    """A stage's default parameter values."""
    return {name: spec.default for name, spec in stage_parameters(stage).items()}


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """Turns ["epochs=3", "fine_tune=false"] into {"epochs": "3", ...}, refusing malformed items."""
    parsed = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(Problem(f"--set {item}", "is not of the form key=value", "write e.g. --set epochs=5"))
        parsed[name.strip()] = value.strip()
    return parsed


def check_parameters(values: dict[str, Any], stages: tuple[str, ...] = STAGES) -> dict[str, Any]:
    """Coerces and checks user-set parameters against the notebooks; reports all problems at once.

    Args:
        values: name -> value (strings from the command line, or typed values).

    Returns:
        The coerced values.

    Raises:
        InputError: unknown names, wrong types or values out of range.
    """
    specs = all_parameters(stages)
    problems, checked = [], {}
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(n for n in sorted(specs) if n not in JOB_PARAMETERS)
            problems.append(Problem(f"parameter '{name}'", "is not a parameter of any stage",
                                    f"use one of: {known}"))
            continue
        try:
            checked[name] = _check_value(spec, value)
        except ValueError as err:
            problems.append(Problem(f"parameter '{name}'", f"is {value!r}: {err}", f"give {spec.describe()}"))
    if problems:
        raise InputError(problems)
    return checked


def _check_value(spec: ParameterSpec, value: Any) -> Any:
    coerced = _coerce(spec.type_name, value)
    if spec.choices and coerced not in spec.choices:
        raise ValueError("not an allowed choice")
    if spec.low is not None and not spec.low <= coerced <= spec.high:
        raise ValueError(f"outside the range {spec.low} to {spec.high}")
    return coerced


def _coerce(type_name: str, value: Any) -> Any:
    target = _TYPES.get(type_name, str)
    if isinstance(value, str) and target is not str:
        text = value.strip()
        if target is bool:
            if text.lower() in ("true", "yes", "1", "on"):
                return True
            if text.lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError("not true or false")
        try:
            return target(ast.literal_eval(text)) if target is float else int(text)
        except (ValueError, SyntaxError) as err:
            raise ValueError(f"not a {type_name}") from err
    if target is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError("not an int")
    if target is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError("not a number")
    if target is bool and not isinstance(value, bool):
        raise ValueError("not true or false")
    return target(value)


def parameters_for(stage: str, values: dict[str, Any]) -> dict[str, Any]:
    """The subset of `values` that `stage` declares."""
    declared = stage_parameters(stage)
    return {k: v for k, v in values.items() if k in declared}
