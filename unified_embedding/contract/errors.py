"""The error every part of the contract raises: a spec or schema that cannot be honoured."""


class SpecError(ValueError):
    """A spec (or a schema file) that cannot be honoured; the message names the field and value."""


def require(ok: bool, message: str) -> None:
    """Raises SpecError(`message`) unless `ok`."""
    if not ok:
        raise SpecError(message)
