"""Campaign commands that take content: `outreach campaign create|edit|test-send`, for
text and email campaigns (the rest of `outreach campaign` is in api/cli.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from api.cli import campaign_app, console, fail, outreach, parse_date, read_ids
from api.cli_identity import cli_actor
from domain.channels import Channel


@campaign_app.command("create")
def campaign_create(
    name: Annotated[str, typer.Option(help="Internal name; shown in communication history.")],
    body: Annotated[str | None, typer.Option(
        help="Text: the message (at most 2 segments with the footer). Email: the body "
             "(HTML is sanitised); default the template's.")] = None,
    help_number: Annotated[str | None, typer.Option(
        help="The number given in answer to HELP (text: required).")] = None,
    channel: Annotated[Channel, typer.Option(help="text, email, phone or letter.")]
    = Channel.TEXT,
    description: Annotated[str, typer.Option(help="Why patients were contacted.")] = "",
    start: Annotated[str | None, typer.Option(help="Start date YYYY-MM-DD (default today).")]
    = None,
    patients: Annotated[Path | None, typer.Option(
        help="File of patient ids, one per line (default: every Active patient with the "
             "channel's contact).")] = None,
    active: Annotated[bool, typer.Option("--active/--inactive",
                                         help="Save as Active (sends) or Inactive.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The saved campaign as JSON.")]
    = False,
    body_file: Annotated[Path | None, typer.Option(
        help="Email: read the body from this file (HTML saved from Word is fine).")] = None,
    subject: Annotated[str | None, typer.Option(help="Email: the subject line.")] = None,
    template: Annotated[str | None, typer.Option(
        help="Email: a library template (`outreach templates list`).")] = None,
    logo: Annotated[str | None, typer.Option(help="Email: which of the logos to show.")]
    = None,
    from_address: Annotated[str | None, typer.Option(
        help="Email: the From address (usually a do-not-reply).")] = None,
    from_name: Annotated[str | None, typer.Option(help="Email: the From name.")] = None,
    protocol: Annotated[str, typer.Option(
        help="The protocol the campaign belongs to (e.g. Diabetes): that protocol's "
             "opt-outs apply.")] = "",
    script: Annotated[str | None, typer.Option(help="Phone: what a person hears.")] = None,
    voicemail: Annotated[str | None, typer.Option(
        help="Phone: what an answering machine gets (no health information).")] = None,
    callback_number: Annotated[str | None, typer.Option(
        help="Phone: the number spoken for calling back.")] = None,
    caller_id: Annotated[str | None, typer.Option(help="Phone: the caller ID shown.")]
    = None,
    provider_name: Annotated[str | None, typer.Option(
        help="Phone: the provider named in the call (default the patient's PCP).")] = None,
    care_manager: Annotated[str | None, typer.Option(help="Phone: a care manager's name.")]
    = None,
    page_size: Annotated[str | None, typer.Option(help="Letter: Letter or A4.")] = None,
    greeting: Annotated[bool | None, typer.Option(
        "--greeting/--no-greeting", help="Letter: \"Dear <first name>,\" on or off.")] = None,
    return_address: Annotated[str | None, typer.Option(
        help="Letter: one of the organisation's return addresses.")] = None,
    letterhead: Annotated[str | None, typer.Option(help="Letter: the letterhead logo.")]
    = None,
    mail_date: Annotated[str | None, typer.Option(
        help="Letter: the date printed (default the start date).")] = None,
) -> None:
    """Create a text, email, phone or letter campaign, saved Inactive unless --active."""
    if body_file is not None:
        if body is not None:
            fail("give --body or --body-file, not both", 2)
        body = _read_text_file(body_file)
    by_channel: dict[Channel, dict[str, Any]] = {
        Channel.EMAIL: {"subject": subject, "template": template, "logo": logo,
                        "from_address": from_address, "from_name": from_name},
        Channel.PHONE: {"template": template, "script": script, "voicemail": voicemail,
                        "callback_number": callback_number, "caller_id": caller_id,
                        "provider": provider_name, "care_manager": care_manager},
        Channel.LETTER: {"page_size": page_size, "greeting": greeting,
                         "return_address": return_address, "logo": letterhead,
                         "mail_date": mail_date},
    }
    email = dict(by_channel.get(channel, {}))
    options = {"provider": "provider_name", "logo": "letterhead" if channel == Channel.LETTER
               else "logo"}
    for other, fields in by_channel.items():
        if other == channel:
            continue
        given = [f"--{options.get(k, k).replace('_', '-')}" for k, v in fields.items()
                 if v is not None and k not in by_channel.get(channel, {})]
        if given:
            fail(f"{', '.join(given)}: only for --channel {other}", 2)
    if channel == Channel.TEXT and (body is None or help_number is None):
        fail("a text campaign needs --body and --help-number", 2)
    with outreach() as o:
        made = o.staff.campaigns.create(
            cli_actor(o), name=name, body=body, help_number=help_number, channel=channel,
            description=description, start=parse_date(start), patients=read_ids(patients),
            active=active, protocol=protocol, **email)
        if as_json:
            sys.stdout.write(json.dumps({
                "campaign_id": made.campaign_id, "channel": made.channel,
                "status": made.status, "patients": made.patients,
                "start_date": made.start_date}) + "\n")
            return
        console.print(f"campaign {made.campaign_id} saved {made.status}: {made.patients} "
                      f"patients, starts {made.start_date} ({made.channel})")


def _read_text_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        # Word's "Save as Web Page" writes Windows-1252 unless told otherwise.
        return path.read_bytes().decode("cp1252", errors="replace")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", 2)
        raise


@campaign_app.command("edit")
def campaign_edit(
    campaign_id: str,
    name: Annotated[str | None, typer.Option()] = None,
    body: Annotated[str | None, typer.Option()] = None,
    help_number: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    start: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    patients: Annotated[Path | None, typer.Option(help="File of patient ids.")] = None,
    body_file: Annotated[Path | None, typer.Option(help="Email: the body from a file.")]
    = None,
    subject: Annotated[str | None, typer.Option(help="Email.")] = None,
    logo: Annotated[str | None, typer.Option(help="Email.")] = None,
    from_address: Annotated[str | None, typer.Option(help="Email.")] = None,
    from_name: Annotated[str | None, typer.Option(help="Email.")] = None,
) -> None:
    """Edit a campaign (an active one only until midnight before its start day)."""
    if body_file is not None:
        if body is not None:
            fail("give --body or --body-file, not both", 2)
        body = _read_text_file(body_file)
    email = {"subject": subject, "logo": logo, "from_address": from_address,
             "from_name": from_name}
    with outreach() as o:
        cid = o.campaigns.resolve(campaign_id)
        extra = {k: v for k, v in email.items() if v is not None}
        if extra and o.campaigns.get(cid).channel != Channel.EMAIL:
            fail(f"{', '.join('--' + k.replace('_', '-') for k in extra)}: only for an "
                 "email campaign", 2)
        o.staff.campaigns.edit(cli_actor(o), str(cid), name=name, body=body,
                               help_number=help_number, description=description,
                               start=parse_date(start), patients=read_ids(patients), **extra)
        console.print(f"campaign {cid} edited")


@campaign_app.command("test-send")
def campaign_test_send(
    to: Annotated[str, typer.Option(
        help="Where the test goes: a mobile number (E.164) for a text campaign, an email "
             "address for an email campaign.")],
    campaign_id: Annotated[str | None, typer.Argument()] = None,
    name: Annotated[str | None, typer.Option(help="Unsaved campaign: its name.")] = None,
    body: Annotated[str | None, typer.Option(help="Unsaved campaign: its text or body.")]
    = None,
    help_number: Annotated[str | None, typer.Option()] = None,
    channel: Annotated[Channel, typer.Option(help="Unsaved campaign: text or email.")]
    = Channel.TEXT,
    body_file: Annotated[Path | None, typer.Option(help="Unsaved email: the body's file.")]
    = None,
    subject: Annotated[str | None, typer.Option(help="Unsaved email: the subject.")] = None,
    template: Annotated[str | None, typer.Option(help="Unsaved email: a template.")] = None,
    from_address: Annotated[str | None, typer.Option(help="Unsaved email.")] = None,
    from_name: Annotated[str | None, typer.Option(help="Unsaved email.")] = None,
) -> None:
    """Send a test (text or email). Never changes the status; an unsaved campaign (no id:
    its fields given) is saved Inactive first."""
    if body_file is not None:
        if body is not None:
            fail("give --body or --body-file, not both", 2)
        body = _read_text_file(body_file)
    with outreach() as o:
        actor, facade = cli_actor(o), o.staff.campaigns
        if campaign_id is None:
            if channel == Channel.EMAIL:
                if not name:
                    fail("give a campaign id, or --name (and --subject, --body or a "
                         "--template) for a new email campaign", 2)
                tested = facade.test_send_draft(
                    actor, to, name=name, channel=channel, body=body, help_number=help_number,
                    subject=subject, template=template, from_address=from_address,
                    from_name=from_name)
            else:
                if not (name and body and help_number):
                    fail("give a campaign id, or --name, --body and --help-number for a new "
                         "one", 2)
                tested = facade.test_send_draft(actor, to, name=name, body=body,
                                                help_number=help_number)
        else:
            tested = facade.test_send(actor, campaign_id, to)
        what = {"email": "email", "phone": "call"}.get(tested.channel, "text")
        console.print(f"test {what} accepted; campaign {UUID(tested.campaign_id).hex} is "
                      f"{tested.status}")


@campaign_app.command("forecast")
def campaign_forecast(
    campaign_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object for tools.")]
    = False,
) -> None:
    """Before activation: when the first and last patient would be reached if activated
    now, and who would not be, and why (opted out, no contact, over the size cap)."""
    with outreach() as o:
        made = o.staff.campaigns.forecast(cli_actor(o), campaign_id)
        if as_json:
            sys.stdout.write(json.dumps(made.as_dict()) + "\n")
            return
        out = made.as_dict()
        console.print(f"{made.name} ({made.channel}, {made.status}): {made.patients} on the "
                      f"list, {made.to_contact} to be contacted, {made.excluded} excluded",
                      markup=False, highlight=False)
        if made.first_at is not None:
            console.print(f"first reached {out['first_at']}, last {out['last_at']} "
                          f"({made.sending_days} sending days; {made.window} "
                          f"{made.timezone}, {made.rate_cap_per_hour} per hour)",
                          markup=False, highlight=False)
        for group in made.groups:
            kinds = "; ".join(f"{k}: {n}" for k, n in group.kinds)
            console.print(f"{group.label}: {group.count} ({kinds})", markup=False,
                          highlight=False)
            for p in group.patients:
                console.print(f"  {p.patient_id}  {p.name}  {p.detail}", markup=False,
                              highlight=False)
        for line in ([made.blocked] if made.blocked else []) + list(made.notes):
            console.print(line, markup=False, highlight=False)
