"""`outreach letters make|list|download CAMPAIGN`: a letter campaign's files (letters and
address labels, 200 per PDF) — made in the background by the workers on the start day, or now
by `make`, with a progress bar; then listed and downloaded to be printed and mailed."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from api.cli import console, err, fail, outreach
from api.cli_identity import cli_actor

letters_app = typer.Typer(no_args_is_help=True, help="A letter campaign's PDF files.")

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON for tools.")]


@letters_app.command("make")
def letters_make(campaign_id: str, as_json: JsonOpt = False) -> None:
    """Print the letters of an active letter campaign now (the workers do it on the start
    day): skipped patients are counted with their reason."""
    with outreach() as o:
        actor = cli_actor(o)
        with Progress(TextColumn("letters"), BarColumn(), MofNCompleteColumn(), console=err,
                      transient=True, disable=as_json) as bar:
            task = bar.add_task("letters", total=None)

            def show(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            made = o.staff.campaigns.letters_make(actor, campaign_id, progress=show)
        if as_json:
            cid = o.campaigns.resolve(campaign_id)
            sys.stdout.write(json.dumps({"campaign_id": str(cid), "letters": made.letters,
                                         "skipped": made.skipped, "files": made.files,
                                         "folder": str(made.folder)}) + "\n")
            return
        console.print(f"{made.letters} letters, {made.skipped} skipped; files in "
                      f"{made.folder}", markup=False)
        for f in made.files:
            console.print(f"  {f['name']}  {f['kind']}  {f['count']} letters  "
                          f"{f['pages']} pages", markup=False)


@letters_app.command("list")
def letters_list(campaign_id: str, as_json: JsonOpt = False) -> None:
    """The campaign's letter files, once they are ready."""
    with outreach() as o:
        files = o.staff.campaigns.letter_files(cli_actor(o), campaign_id)
        folder = o.letters.folder(o.campaigns.resolve(campaign_id))
        if as_json:
            sys.stdout.write(json.dumps({"folder": str(folder), "files": files}) + "\n")
            return
        if not files:
            fail("the letters are not ready yet (the workers make them on the start day, "
                 "or: outreach letters make ID)")
        for f in files:
            console.print(f"{f['name']}  {f['kind']}  {f['count']} letters  {f['pages']} "
                          f"pages  {f['bytes']:,} bytes", markup=False)


@letters_app.command("download")
def letters_download(
    campaign_id: str,
    to: Annotated[Path, typer.Option(help="The folder to copy the files into.")] = Path("."),
) -> None:
    """Copy the campaign's letter and label files into a folder, to print them."""
    with outreach() as o:
        actor = cli_actor(o)
        files = o.staff.campaigns.letter_files(actor, campaign_id)
        if not files:
            fail("the letters are not ready yet")
        try:
            to.mkdir(parents=True, exist_ok=True)
            for f in files:
                target = to / str(f["name"])
                source = o.staff.campaigns.letter_download(actor, campaign_id, str(f["name"]))
                shutil.copyfile(source, target)
                console.print(str(target), markup=False)
        except OSError as exc:
            fail(f"cannot copy the letters: {exc.strerror or exc}", 2)
