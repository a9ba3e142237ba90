"""docs/configuration.md, generated from the settings' pydantic fields and descriptions
(``streams/settings.py``). ``python -m streams.devtools.docs`` writes the page; a unit test fails
when it drifts.
"""

from __future__ import annotations

import textwrap


def settings_markdown() -> str:
    """Every setting with its environment variable, default and description."""
    from streams.settings import ENV_PREFIX, Settings

    lines = ["| environment variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if name == "cache_dir":
            default = "`$XDG_CACHE_HOME/creditline` (`~/.cache/creditline`)"
        else:
            value = field.default
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            if isinstance(value, bool):
                value = str(value).lower()  # as it is written in the environment
            default = "unset" if value is None else f"`{value}`"
        lines.append(f"| `{ENV_PREFIX}{name.upper()}` | {default} | {field.description or ''} |")
    return "\n".join(lines) + "\n"


def configuration_markdown() -> str:
    """The whole of docs/configuration.md: how settings are read, then every setting."""
    from streams.settings import CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE, ENV_PREFIX

    def paragraph(text: str) -> str:
        return textwrap.fill(text, 96, break_long_words=False, break_on_hyphens=False)

    return "\n".join(
        [
            "# Configuration",
            "",
            "<!-- Generated from streams/settings.py by `python -m streams.devtools.docs`: edit\n"
            "     the settings' descriptions there (a unit test fails when this page drifts). -->",
            "",
            paragraph(
                f"All settings come from the environment with the prefix `{ENV_PREFIX}` "
                "(pydantic-settings), over an optional TOML file — "
                f"`{CONFIG_FILE_ENV}` (or `--config`), else `./{DEFAULT_CONFIG_FILE}` if present — "
                "whose keys are the settings' names in lower case "
                '(`kafka_bootstrap_servers = "kafka-1:9093"`); the environment wins over the file, '
                "`--bootstrap-server` over both. Secrets (passwords, a Redis URL with credentials) "
                "are never printed, logged or echoed in an error."
            ),
            "",
            paragraph(
                "A production client configuration is in [Operations](operations.md#clients); "
                "how each setting is used in production: "
                "[Kafka](operations.md#kafka-in-production), "
                "[Redis](operations.md#redis-in-production)."
            ),
            "",
            settings_markdown(),
        ]
    )
