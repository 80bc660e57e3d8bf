# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Sub-command groups of the ``hygie`` command line imported only when one of their commands runs.

Importing every sub-CLI up front made ``hygie --help`` import the whole platform (the audit package alone pulls
SQLAlchemy and the alert models): seconds before the first line of help. A lazy sub-app is registered by name, with
the ``module:attribute`` of its Typer app and its one-line help; ``--help`` lists it from that line, and its module is
imported the moment the command line resolves its name (to run one of its commands, or to print its own help).

    app = lazy_typer(help="...")
    add_lazy_typer(app, "audit", "hygie.audit.cli:audit_app", "The tamper-evident audit log: ...")

The group that runs is built from the sub-app exactly as ``app.add_typer(sub_app, name=...)`` builds it, so its
commands, options and help are the same; the listing keeps the order of registration among ``add_typer`` calls.
tests/test_startup.py checks the help lines against the sub-apps' own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_group_from_info
from typer.models import TyperInfo

if TYPE_CHECKING:
    # The click that typer carries (its own copy, not the click package): the types of its commands.
    from typer._click import Command, Context


@dataclass(frozen=True)
class LazySubApp:
    name: str
    target: str
    """``module:attribute`` of the sub-app's ``typer.Typer``."""
    help: str
    position: int
    """How many eagerly added groups come before it in the listing."""

    def load(self) -> typer.Typer:
        module, _, attribute = self.target.partition(":")
        sub_app = getattr(importlib.import_module(module), attribute)
        if not isinstance(sub_app, typer.Typer):
            raise TypeError(f"{self.target} is not a typer.Typer")
        return sub_app


class _Placeholder(TyperCommand):
    """Stands in the listing for a sub-app not imported yet: its name and help line. Anything that reads its
    ``commands`` (a walk of the command tree, as tests/portal/test_recording.py does) gets the real sub-app's."""

    def __init__(self, name: str, help: str, load: Callable[[], TyperGroup]) -> None:
        super().__init__(name, help=help)
        self._load = load

    @property
    def commands(self) -> MutableMapping[str, Command]:
        return self._load().commands


class LazyGroup(TyperGroup):
    """A Typer group whose lazy sub-apps stand as placeholders (name and help) until resolved."""

    lazy_sub_apps: ClassVar[dict[str, LazySubApp]] = {}
    pretty_exceptions_short: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Typer puts commands first, then the groups of add_typer in order; lazy sub-apps go back to their place
        # among those groups.
        commands = [(n, c) for n, c in self.commands.items() if not isinstance(c, TyperGroup)]
        groups = [(n, c) for n, c in self.commands.items() if isinstance(c, TyperGroup)]
        placeholders = [(lazy.position, lazy.name, _Placeholder(lazy.name, lazy.help, partial(self._load, lazy.name)))
                        for lazy in self.lazy_sub_apps.values()]  # fmt: skip
        merged: list[tuple[str, Command]] = list(commands)
        for index, (name, group) in enumerate(groups):
            merged += [(n, c) for p, n, c in placeholders if p == index]
            merged.append((name, group))
        merged += [(n, c) for p, n, c in placeholders if p >= len(groups)]
        self.commands = dict(merged)

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and isinstance(command, _Placeholder):
            command = self._load(name)
        return name, command, rest

    def _load(self, name: str) -> TyperGroup:
        """Import the sub-app and build its group as ``add_typer`` would have (once)."""
        loaded = self.commands.get(name)
        if isinstance(loaded, TyperGroup):
            return loaded
        group = get_group_from_info(
            TyperInfo(self.lazy_sub_apps[name].load(), name=name),
            pretty_exceptions_short=self.pretty_exceptions_short,
            rich_markup_mode=self.rich_markup_mode,
            suggest_commands=self.suggest_commands,
        )
        self.commands[name] = group
        return group


def lazy_typer(**options: Any) -> typer.Typer:
    """A ``typer.Typer`` (same options) that accepts :func:`add_lazy_typer`."""
    cls: type[LazyGroup] = type("LazyGroup", (LazyGroup,), {"lazy_sub_apps": {}})
    app = typer.Typer(cls=cls, **options)
    cls.pretty_exceptions_short = app.pretty_exceptions_short
    return app


def add_lazy_typer(app: typer.Typer, name: str, target: str, help: str) -> None:
    """Register the sub-app at ``target`` (``module:attribute``) under ``name``, listed with ``help``."""
    cls = app.info.cls
    if not (isinstance(cls, type) and issubclass(cls, LazyGroup)):
        raise TypeError("lazy sub-apps need an app made by lazy_typer()")
    if name in cls.lazy_sub_apps:
        raise ValueError(f"{name} is already registered")
    cls.lazy_sub_apps[name] = LazySubApp(name, target, help, position=len(app.registered_groups))
