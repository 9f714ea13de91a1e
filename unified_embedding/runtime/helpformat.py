"""`--help` for every `ue` command: each optional flag's default after its description."""

from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows `(default: ...)` for optional flags; a required flag has no default to show, and a
    None default is spelled out in the flag's own help ("None: ...")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.required else super()._get_help_string(action)
