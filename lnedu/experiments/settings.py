"""The settings table of an experiment: what the paper did, what our presets do, and where they differ.

Each experiment module lists its settings once, as :class:`Setting` rows in ``SETTINGS``::

    SETTINGS = (
        Setting("hidden units", "1000 (§6.6)", "hidden"),
        Setting("epochs", "not stated", lambda c: c.epochs),
        Setting("batch norm on the logits", "'all layers' (§6.6)", "bn_logits",
                differs="we read 'all layers' as the hidden layers"),
    )

and :func:`settings_table` reads the values from the module's presets, so the table cannot drift from the code
that runs: ``setting | paper | paper preset | medium preset | small preset``. A row whose ``differs`` is set is
one where our ``paper`` preset does not do what the paper says; its cell says so and why. The module's docstring
holds the same table (``settings_table(module).to_markdown()``; a test keeps the two equal) and its notebook
displays it.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Setting", "SettingsTable", "settings_table", "COLUMNS_PRESETS"]

COLUMNS_PRESETS = ("paper", "medium", "small")  # the presets a table shows, in this order


@dataclass(frozen=True)
class Setting:
    """One row: a setting's ``name``, what the ``paper`` says (with where, or "not stated"), how to read its
    ``value`` from a preset (a ``Config`` field name, or a function of the config), and ``differs``: why our
    ``paper`` preset does not do what the paper says ("" where it does)."""

    name: str
    paper: str
    value: str | Callable[[Any], Any]
    differs: str = ""

    def __post_init__(self):
        for k in ("name", "paper"):
            if not isinstance(getattr(self, k), str) or not getattr(self, k).strip():
                raise ValueError(f"{k}: expected a non-empty string, got {getattr(self, k)!r}")
        if not (callable(self.value) or (isinstance(self.value, str) and self.value.isidentifier())):
            raise ValueError(f"value: expected a Config field name or a function of the config, got {self.value!r}")
        if not isinstance(self.differs, str):
            raise ValueError(f"differs: expected a string (why the paper preset differs, or ''), got "
                             f"{self.differs!r}")

    def read(self, config) -> str:
        """This setting's value in ``config``, as text."""
        if callable(self.value):
            v = self.value(config)
        elif not hasattr(config, self.value):
            raise ValueError(f"value: expected a field of {type(config).__name__}, got {self.value!r}")
        else:
            v = getattr(config, self.value)
        return format_value(v)


def format_value(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {format_value(x)}" for k, x in v.items()) or "-"
    if isinstance(v, (tuple, list)):
        return ", ".join(format_value(x) for x in v) or "-"
    if v is None or v == "":
        return "-"
    return str(v)


@dataclass
class SettingsTable:
    """Rows of ``(setting, paper, paper preset, medium preset, small preset)``; shows as a table in a notebook."""

    title: str
    header: tuple
    rows: list

    def to_markdown(self) -> str:
        def cell(s):
            return str(s).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in self.rows]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return f"**{self.title}**\n\n" + self.to_markdown()

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>" for c in r)
                       + "</tr>" for r in self.rows)
        return (f"<p><b>{html.escape(self.title)}</b></p><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table>")

    def __str__(self) -> str:
        return self.to_markdown()


def settings_table(exp, presets=COLUMNS_PRESETS) -> SettingsTable:
    """The settings table of experiment module ``exp`` (its ``SETTINGS`` read from its ``PRESETS``)."""
    rows_in = getattr(exp, "SETTINGS", None)
    if not isinstance(rows_in, tuple) or not rows_in or not all(isinstance(r, Setting) for r in rows_in):
        raise ValueError(f"SETTINGS: expected {exp.__name__} to define a non-empty tuple of Setting rows, got "
                         f"{rows_in!r}")
    missing = [p for p in presets if p not in exp.PRESETS]
    if missing:
        raise ValueError(f"presets: expected presets of {exp.NAME} ({sorted(exp.PRESETS)}), got {missing}")
    header = ("setting", "paper", *(f"`{p}` preset" for p in presets))
    rows = []
    for s in rows_in:
        values = [s.read(exp.PRESETS[p]) for p in presets]
        if s.differs and "paper" in presets:
            i = presets.index("paper")
            values[i] = f"{values[i]} (differs: {s.differs})"
        rows.append((s.name, s.paper, *values))
    return SettingsTable(f"{exp.TITLE}: the paper's settings and our presets ({exp.PAPER})", header, rows)
