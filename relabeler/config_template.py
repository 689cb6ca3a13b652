"""``relabeler init``'s commented ``relabeler.toml``: every key of :class:`RunConfig` at its
default, with its description; and a value written as a TOML literal."""

from __future__ import annotations

from typing import Any

from relabeler.config import SECTIONS, RunConfig


def toml_literal(value: Any) -> str:
    """``value`` as TOML writes it (a string quoted and escaped, a list as an array)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return repr(value)


#: sections whose keys mean something else chosen than left at their default
#: (``model_fields_set``): ``relabeler init`` writes them commented
UNCHOSEN_SECTIONS = ("data",)


def render_template() -> str:
    """A commented ``relabeler.toml`` with every key at its default."""
    defaults = RunConfig()
    lines = ["# relabeler run configuration. Flags override these; see `relabeler --help`.", "",
             f"# {RunConfig.model_fields['run_dir'].description}",
             f"run_dir = {toml_literal(defaults.run_dir)}", ""]
    for section, model in SECTIONS.items():
        values = getattr(defaults, section)
        lines.append(f"[{section}]")
        for key, info in model.model_fields.items():
            lines.append(f"# {info.description}")
            # [data] stays commented: a key written out counts as chosen (data.id_col = "id"
            # must then exist in the data, and a dataset made with `data --sample 300` would
            # be refused by `train` for data.sample = 0)
            quiet = "# " if section in UNCHOSEN_SECTIONS else ""
            lines.append(f"{quiet}{key} = {toml_literal(getattr(values, key))}")
        lines.append("")
    return "\n".join(lines)
