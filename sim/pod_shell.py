"""What a command run in a simulated Windows pod prints (pod exec), Windows-style."""

from __future__ import annotations

from dataclasses import dataclass

from sim.world import Obj, World


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int


def run_in_pod(world: World, pod: Obj, container: str, argv: list[str]) -> ExecResult:
    """Run `argv` in `container` of `pod`. Unknown commands fail with "not simulated"."""
    del world, pod, container
    if len(argv) >= 3 and argv[0].lower() == "cmd" and argv[1].lower() == "/c":
        words = argv[2:] if len(argv) > 3 else argv[2].split()
        if words and words[0].lower() == "echo":
            return ExecResult(" ".join(words[1:]) + "\r\n", "", 0)
        if words and words[0].lower() == "exit" and len(words) == 2 and words[1].isdigit():
            return ExecResult("", "", int(words[1]))
    return ExecResult("", f"not simulated: {' '.join(argv)}\r\n", 1)
