"""A small name -> factory registry (timm style) with helpful errors, shared by fusions, backbones and schemes."""

import difflib

from .exceptions import UnknownNameError

__all__ = ["Registry"]


class Registry:
    """Map names to factories (classes or callables), each with free-form metadata tags.

    Parameters
    ----------
    kind : str
        What is registered (``"fusion"``, ``"backbone"``...); used in error messages.

    Examples
    --------
    >>> reg = Registry("widget")
    >>> @reg.register("round", family="basic")
    ... class Round:
    ...     pass
    >>> reg.list()
    ['round']
    >>> reg.get("round") is Round
    True
    >>> reg.tags("round")["family"]
    'basic'
    """

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}
        self._tags = {}

    def register(self, name, **tags):
        """Decorator registering ``obj`` under ``name``; a duplicate name raises ``ValueError``."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"A {self.kind} name must be a non-empty str, got {name!r}.")

        def decorator(obj):
            if name in self._entries:
                raise ValueError(
                    f"A {self.kind} named {name!r} is already registered "
                    f"({self._entries[name]!r}); choose another name."
                )
            self._entries[name] = obj
            self._tags[name] = dict(tags)
            return obj

        return decorator

    def unregister(self, name):
        """Remove ``name`` (used by tests and plug-ins that re-register)."""
        self._check(name)
        del self._entries[name]
        del self._tags[name]

    def _check(self, name):
        if name not in self._entries:
            valid = sorted(self._entries)
            close = difflib.get_close_matches(str(name), valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}.{hint} Valid {self.kind} names: {valid}."
            )

    def get(self, name):
        """Return the factory registered under ``name``."""
        self._check(name)
        return self._entries[name]

    def tags(self, name):
        """Return a copy of the metadata tags of ``name``."""
        self._check(name)
        return dict(self._tags[name])

    def create(self, name, /, **kwargs):
        """Instantiate the factory registered under ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)

    def list(self, **tag_filter):
        """Registered names (in registration order) whose tags equal every item of ``tag_filter``."""
        return [
            name
            for name, tags in self._tags.items()
            if all(tags.get(key) == value for key, value in tag_filter.items())
        ]

    def __contains__(self, name):
        return name in self._entries

    def __len__(self):
        return len(self._entries)
