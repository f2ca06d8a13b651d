"""`outreach users …`, `outreach login|logout|whoami|password`: staff users and the command
line's own sign-in (api.cli_identity).

Passwords are never command-line arguments (a process list shows those to every user of the
machine): they are typed at a prompt, or read from the first line of stdin with
`--password-stdin` (scripts). Tokens are printed once, when made; the directory stores only
what verifies them.
"""

from __future__ import annotations

import getpass
import json
import sys
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli import app, console, fail, outreach
from api.cli_identity import cli_actor, forget_token, save_token
from application.users import UserView
from domain.access import ALL_SUBSCRIBERS, SETUP_ACTOR, Actor, Role

users_app = typer.Typer(no_args_is_help=True, help="Staff users, roles and groups.")

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON for tools.")]
StdinOpt = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of stdin (scripts).")]
RoleOpt = Annotated[list[str] | None, typer.Option(
    "--role", help="share_views, campaigns, opt_outs or admin (repeatable).")]
GroupOpt = Annotated[list[str] | None, typer.Option(
    "--group", help="A subscriber group, or 'All Subscribers' (repeatable).")]


def read_password(from_stdin: bool, prompt: str = "Password", confirm: bool = True) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail("--password-stdin: stdin gave no password", 2)
        return line
    if not sys.stdin.isatty():
        fail("no terminal to type the password at: give --password-stdin", 2)
    first = getpass.getpass(f"{prompt}: ")
    if confirm and getpass.getpass(f"{prompt} again: ") != first:
        fail("the two passwords differ", 2)
    return first


def _user_json(view: UserView) -> dict[str, Any]:
    data = asdict(view)
    data.pop("generation", None)
    for key in ("locked_until", "last_login_at", "created_at"):
        data[key] = data[key].isoformat() if data[key] else None
    data["roles"], data["groups"] = list(view.roles), list(view.groups)
    return data


def _print_user(view: UserView, as_json: bool, verb: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(_user_json(view)) + "\n")
        return
    console.print(f"{verb} {view.email} ({view.name}): roles {', '.join(view.roles) or '-'}; "
                  f"groups {', '.join(view.groups) or '-'}; "
                  f"{'active' if view.active else 'inactive'}", markup=False)


@users_app.command("create-admin")
def users_create_admin(
    email: Annotated[str, typer.Option(help="The administrator's email: their username.")],
    name: Annotated[str, typer.Option(help="Their name.")],
    password_stdin: StdinOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The first administrator (every role, All Subscribers). Once users exist, only a
    signed-in administrator may add another."""
    password = read_password(password_stdin)
    with outreach() as o:
        # Before the first user, whoever reaches the database sets up (a saved token from
        # another installation is not asked for); after, an administrator must be signed in.
        actor = SETUP_ACTOR if not o.users.any_users() else cli_actor(o)
        view = o.staff.users.create(actor, email, name, password, list(Role),
                                    [ALL_SUBSCRIBERS])
        _print_user(view, as_json, "created administrator")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Their email: their username.")],
    name: Annotated[str, typer.Option(help="Their name.")],
    role: RoleOpt = None, group: GroupOpt = None,
    password_stdin: StdinOpt = False, as_json: JsonOpt = False,
) -> None:
    """Add a user with roles and groups (an administrator's command)."""
    password = read_password(password_stdin)
    with outreach() as o:
        view = o.staff.users.create(cli_actor(o), email, name, password, role or [],
                                    group or [])
        _print_user(view, as_json, "created")


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """Every user: email, name, roles, groups, active, last sign-in."""
    with outreach() as o:
        views = o.staff.users.list(cli_actor(o))
    if as_json:
        sys.stdout.write(json.dumps([_user_json(v) for v in views]) + "\n")
        return
    table = Table(title="Users")
    for col in ("email", "name", "kind", "roles", "groups", "active", "last sign-in"):
        table.add_column(col)
    for v in views:
        table.add_row(v.email, v.name, v.kind, ", ".join(v.roles), ", ".join(v.groups),
                      "yes" if v.active else "no",
                      v.last_login_at.isoformat(timespec="minutes") if v.last_login_at else "")
    console.print(table)


@users_app.command("show")
def users_show(user: Annotated[str, typer.Argument(help="Email or id.")],
               as_json: JsonOpt = False) -> None:
    """One user."""
    with outreach() as o:
        _print_user(o.staff.users.get(cli_actor(o), user), as_json, "user")


@users_app.command("update")
def users_update(
    user: Annotated[str, typer.Argument(help="Email or id.")],
    name: Annotated[str | None, typer.Option()] = None,
    role: Annotated[list[str] | None, typer.Option(
        "--role", help="The user's roles from now on (repeatable; replaces them).")] = None,
    no_roles: Annotated[bool, typer.Option("--no-roles", help="Take every role away.")]
    = False,
    group: Annotated[list[str] | None, typer.Option(
        "--group", help="The user's groups from now on (repeatable; replaces them).")] = None,
    active: Annotated[bool | None, typer.Option(
        "--active/--inactive", help="Reactivate, or deactivate (signs them out).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a user's name, roles, groups or whether they may sign in."""
    if no_roles and role:
        fail("give --role or --no-roles, not both", 2)
    with outreach() as o:
        view = o.staff.users.update(cli_actor(o), user, name=name,
                                    roles=[] if no_roles else role, groups=group,
                                    active=active)
        _print_user(view, as_json, "updated")


@users_app.command("set-password")
def users_set_password(user: Annotated[str, typer.Argument(help="Email or id.")],
                       password_stdin: StdinOpt = False) -> None:
    """Give a user a new password (the guide's reset by an administrator); their tokens and
    sessions end."""
    password = read_password(password_stdin, "New password")
    with outreach() as o:
        o.staff.users.set_password(cli_actor(o), user, password)
        console.print(f"password set for {user}", markup=False)


@users_app.command("reset-token")
def users_reset_token(user: Annotated[str, typer.Argument(help="Email or id.")],
                      as_json: JsonOpt = False) -> None:
    """A one-time, expiring token with which the user sets their own password
    (POST /auth/reset). Printed once: send it to them by a safe way."""
    with outreach() as o:
        token, expires = o.staff.users.issue_reset(cli_actor(o), user)
    if as_json:
        sys.stdout.write(json.dumps({"token": token, "expires_at": expires.isoformat()}) + "\n")
        return
    console.print(f"reset token (valid once, until {expires.isoformat(timespec='minutes')}): "
                  f"{token}", markup=False, soft_wrap=True)


@users_app.command("revoke-tokens")
def users_revoke_tokens(user: Annotated[str, typer.Argument(help="Email or id.")]) -> None:
    """End every token and session of the user (sign them out everywhere)."""
    with outreach() as o:
        o.staff.users.revoke_tokens(cli_actor(o), user)
        console.print(f"every token and session of {user} revoked", markup=False)


@users_app.command("service-account")
def users_service_account(
    name: Annotated[str, typer.Argument(help="What it is for, e.g. 'nightly export'.")],
    role: RoleOpt = None, group: GroupOpt = None, as_json: JsonOpt = False,
) -> None:
    """A named account for scripts: prints its token once (set OUTREACH_TOKEN to it)."""
    with outreach() as o:
        view, token = o.staff.users.create_service_account(cli_actor(o), name, role or [],
                                                           group or [])
    if as_json:
        sys.stdout.write(json.dumps({**_user_json(view), "token": token}) + "\n")
        return
    console.print(f"service account {view.email}: roles {', '.join(view.roles) or '-'}",
                  markup=False)
    console.print(f"token (shown once): {token}", markup=False, soft_wrap=True)


@users_app.command("groups")
def users_groups(as_json: JsonOpt = False) -> None:
    """The groups a user may be given: All Subscribers and the providers file's groups."""
    with outreach() as o:
        names = o.staff.users.groups(cli_actor(o))
    if as_json:
        sys.stdout.write(json.dumps(names) + "\n")
        return
    for name in names:
        console.print(name, markup=False)


# -- the command line's own sign-in ---------------------------------------------------------
@app.command("login")
def login(
    email: Annotated[str, typer.Option(help="Your email (your username).")],
    password_stdin: StdinOpt = False,
    days: Annotated[int | None, typer.Option(
        help="How long the saved sign-in lasts (default: the API token's).")] = None,
) -> None:
    """Sign the command line in as you: a token saved for your login only
    (OUTREACH_TOKEN_FILE, default ~/.config/outreach/token)."""
    password = read_password(password_stdin, confirm=False)
    with outreach() as o:
        actor, _view = o.staff.users.login(email, password, "cli")
        token, expires = o.staff.users.issue_own_token(actor, "command line", days)
    path = save_token(token)
    until = f" until {expires.isoformat(timespec='minutes')}" if expires else ""
    console.print(f"signed in as {actor.username}{until} (token saved in {path})",
                  markup=False)


@app.command("logout")
def logout() -> None:
    """Forget the saved sign-in (OUTREACH_TOKEN, if set, still applies)."""
    console.print("signed out" if forget_token() else "not signed in", markup=False)


@app.command("whoami")
def whoami(as_json: JsonOpt = False) -> None:
    """Who the command line acts as, with which roles and groups."""
    with outreach() as o:
        actor: Actor = cli_actor(o)
    data = {"username": actor.username, "user_id": actor.user_id, "via": actor.via,
            "roles": sorted(r.value for r in actor.roles), "groups": list(actor.groups)}
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
        return
    console.print(f"{actor.username} ({actor.via}): roles {', '.join(data['roles']) or '-'}; "
                  f"groups {', '.join(actor.groups) or '-'}", markup=False)


@app.command("password")
def change_password(password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the current and the new password from the first two "
                                 "lines of stdin.")] = False) -> None:
    """Change your own password (every token and session of yours ends: sign in again)."""
    current = read_password(password_stdin, "Current password", confirm=False)
    new = read_password(password_stdin, "New password")
    with outreach() as o:
        actor = cli_actor(o)
        o.staff.users.change_own_password(actor, current, new)
    forget_token()
    console.print("password changed: sign in again (outreach login)", markup=False)
