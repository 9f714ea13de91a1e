"""How a command ends: bad input is one line `<prog>: error: ...` and status 2; a job that fails
is `<prog>: failed: <cause>` and status 1. No traceback for either.

    return run_command("ue preprocess", work)   # work() -> the exit status
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

BAD_INPUT = 2
FAILED = 1


def run_command(prog: str, work: Callable[[], int]) -> int:
    """Runs `work` as the command `prog`: its status, or the one line for bad input or failure."""
    try:
        return int(work())
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return BAD_INPUT
    except (RuntimeError, OSError) as e:  # a failed job; a runner wraps the cause, named last
        print(f"{prog}: failed: {failure(e)}", file=sys.stderr)
        return FAILED


def failure(error: BaseException) -> str:
    """The cause of a failed job: the last line of the message, without the `package.module.
    Error: ` prefix a worker process's traceback ends with."""
    cause = (str(error).strip().splitlines() or [type(error).__name__])[-1]
    return re.sub(r"^(?:[a-z_]\w*\.){2,}[A-Z]\w*: ", "", cause)
