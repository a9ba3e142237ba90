"""The wire contract's JSON Schema files, AsyncAPI and OpenAPI documents."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass
from streams.cli.root import (
    console,
    fail,
    schemas_app,
)


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Option(help="Where to write the files.")] = Path(
        "schemas/json"
    ),
    check: Annotated[bool, typer.Option(help="Only check that the files are up to date.")] = False,
) -> None:
    """Write (or check) one JSON Schema file per wire model, the AsyncAPI document of the
    topics and the OpenAPI document of the HTTP decision API (schemas/asyncapi.yaml and
    schemas/openapi.yaml, or into DIRECTORY when it is not schemas/json)."""
    from schemas.export import export_schemas

    stale = export_schemas(directory, check=check)
    if check and stale:
        fail(f"out of date: {', '.join(stale)}; run `creditline schemas export`")
    console.print("schemas up to date" if check else f"wrote schemas to {directory}")
