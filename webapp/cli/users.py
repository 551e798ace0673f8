"""``flask users create USER_ID --password P [--email E] [--admin]`` and
``flask users logout-everywhere USER_ID`` (ends every session and bearer token)."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from ..services import accounts
from ..services.errors import DomainError

users = AppGroup("users", help="Manage miners' accounts.")


@users.command("create")
@click.argument("user_id")
@click.option("--password", required=True, help="At least 8 characters, not a common password.")
@click.option("--email", default=None)
@click.option("--display-name", default=None)
@click.option("--country", "country_code", default=None, help="ISO 3166-1 alpha-2, e.g. PT.")
@click.option("--admin", is_flag=True, help="Make a platform admin.")
def create(user_id: str, password: str, email: str | None, display_name: str | None,
           country_code: str | None, admin: bool) -> None:
    """Create a user."""
    try:
        user = accounts.register(user_id=user_id, password=password, email=email,
                                 display_name=display_name, country_code=country_code, is_admin=admin)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"created {user.user_id}{' (admin)' if admin else ''}")


@users.command("logout-everywhere")
@click.argument("user_id")
def logout_everywhere(user_id: str) -> None:
    """End every page session and every bearer token of a user."""
    from ..extensions import db
    from ..models import User

    user = db.session.get(User, user_id)
    if user is None:
        raise click.ClickException(f"no user {user_id!r}")
    ended = accounts.log_out_everywhere(user)
    click.echo(f"{user_id}: {ended} session(s) and every bearer token ended")


commands = [users]
