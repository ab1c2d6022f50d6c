"""Limits on the notebook container's environment properties (every layer: `.ebextensions`,
`overrides.yml`, `.env`, the shell, `--set`): Elastic Beanstalk's own (production would refuse the
value) and the kernel's (the container could not even start its first process).

Pure: mappings in, problems out; `up` reports them before anything starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Elastic Beanstalk's limits on environment properties ("Environment properties and other software
# settings"): a key up to 128 characters, a value up to 256, and all of them, written KEY=VALUE, 4 KB.
EB_KEY_CHARACTERS = 128
EB_VALUE_CHARACTERS = 256
EB_TOTAL_BYTES = 4096
# Linux refuses to exec a process with one environment string (KEY=VALUE and its NUL) longer than
# MAX_ARG_STRLEN, 32 pages of 4 KiB: the container would exit at once with "argument list too long".
EXEC_STRING_BYTES = 32 * 4096


@dataclass(frozen=True)
class EnvProblem:
    key: str
    message: str
    fatal: bool = False  # True: the container cannot start with it; False: production would refuse it


def environment_problems(environment: Mapping[str, str], sources: Mapping[str, str] | None = None) -> list[EnvProblem]:
    """Each variable that production or the kernel would refuse, by key, named with where it was set
    (`sources`: key -> "overrides.yml:5", ".env:3", ...). Values are measured, never shown (one may be
    a secret)."""
    problems = []
    total = 0
    for key, value in environment.items():
        where = (sources or {}).get(key) or "the environment properties"
        entry = len(f"{key}={value}".encode())
        total += entry
        if entry + 1 > EXEC_STRING_BYTES:
            problems.append(EnvProblem(key, f"{key} in {where} is {entry} bytes as KEY=VALUE; Linux starts no "
                                            f"process with an environment string over {EXEC_STRING_BYTES} bytes, so "
                                            "the notebook container could not start: shorten it, or pass it as a "
                                            "file", fatal=True))
        elif len(value) > EB_VALUE_CHARACTERS:
            problems.append(EnvProblem(key, f"{key} in {where} has a value of {len(value)} characters: Elastic "
                                            f"Beanstalk refuses environment property values over "
                                            f"{EB_VALUE_CHARACTERS}, so production would refuse it"))
        if len(key) > EB_KEY_CHARACTERS:
            problems.append(EnvProblem(key, f"{key[:40]}… in {where} is a key of {len(key)} characters: Elastic "
                                            f"Beanstalk refuses keys over {EB_KEY_CHARACTERS}, so production "
                                            "would refuse it"))
    if total > EB_TOTAL_BYTES:
        largest = sorted(environment, key=lambda k: len(environment[k]), reverse=True)[:3]
        problems.append(EnvProblem("", f"the notebook's environment properties come to {total} bytes as KEY=VALUE: Elastic "
                                       f"Beanstalk refuses more than {EB_TOTAL_BYTES} in all, so production would "
                                       f"refuse them (the largest: {', '.join(largest)})"))
    return problems
