"""``contrail-ha image``: build the product's container image with no registry, show it, and carry
it to hosts without one (save / load)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from contrail_ha.cli_errors import CommandError

if TYPE_CHECKING:
    from contrail_ha.image.engine import Engine

console = Console(highlight=False, soft_wrap=True)


def _engine() -> Engine:
    from contrail_ha.image.engine import Engine

    return Engine()


def build_image(progress: Callable[[str], None]) -> str:
    """The image ``up`` runs (built unless it exists); a clear error when it cannot be."""
    from contrail_ha.image.build import build as do_build
    from contrail_ha.image.engine import EngineError

    try:
        return do_build(_engine(), log=progress)
    except EngineError as e:
        raise CommandError(f"[red]up failed: no image[/]: {e}") from e


@click.group()
def image() -> None:
    """The container image: build, show, save, load."""


@image.command()
def build() -> None:
    """Build localhost/contrail-ha:<version>-<inputs> unless it exists (debootstrap base, runtime only)."""
    from contrail_ha.image.build import build as do_build
    from contrail_ha.image.engine import EngineError

    eng = _engine()
    try:
        tag = do_build(eng, log=lambda m: console.print(f"[dim]{m}[/]"))
    except EngineError as e:
        raise CommandError(f"[red]image build failed:[/] {e}") from None
    console.print(f"image: {tag} ({eng.image_size(tag) / 1e6:.0f} MB)")


@image.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def show(as_json: bool) -> None:
    """The tag this tree builds, and whether it exists."""
    from contrail_ha.image.build import plan

    p = plan()
    eng = _engine()
    exists = eng.available() and eng.image_exists(p.tag)
    size_bytes = eng.image_size(p.tag) if exists else None
    if as_json:
        click.echo(json.dumps({"tag": p.tag, "inputs": p.inputs, "built": exists, "size_bytes": size_bytes}))
    else:
        size = f", {size_bytes / 1e6:.0f} MB" if size_bytes else ""
        console.print(f"{p.tag}: {'built' + size if exists else 'not built (contrail-ha image build)'}")


@image.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tag", default=None, help="the image to save (default: this tree's)")
def save(path: Path, tag: str | None) -> None:
    """Write the image to PATH (a docker-archive tarball) to carry it to a host without a registry."""
    from contrail_ha.image.build import plan
    from contrail_ha.image.build import save as do_save
    from contrail_ha.image.engine import EngineError

    tag = tag or plan().tag
    eng = _engine()
    try:
        if not eng.image_exists(tag):
            raise CommandError(f"[red]{tag} is not built:[/] run `contrail-ha image build` first")
        do_save(eng, tag, path)
    except EngineError as e:
        raise CommandError(f"[red]image save failed:[/] {e}") from None
    console.print(f"saved {tag} to {path} ({path.stat().st_size / 1e6:.0f} MB)")


@image.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def load(path: Path) -> None:
    """Load an image that `image save` wrote."""
    from contrail_ha.image.build import load as do_load
    from contrail_ha.image.engine import EngineError

    try:
        console.print(do_load(_engine(), path) or f"loaded {path}")
    except EngineError as e:
        raise CommandError(f"[red]image load failed:[/] {e}") from None
