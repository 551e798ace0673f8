"""``flask notify USER_ID --category C --subtype S --title T [--body B] [--link L]``:
send one notification through the dispatcher (preferences apply)."""
from __future__ import annotations

import click

from ..models import NOTIFICATION_CATEGORIES
from ..services import notifications
from ..services.errors import DomainError


@click.command("notify")
@click.argument("user_id")
@click.option("--category", required=True, type=click.Choice(NOTIFICATION_CATEGORIES))
@click.option("--subtype", required=True, help="e.g. personal_best, badge_earned, announcement")
@click.option("--title", required=True)
@click.option("--body", default="")
@click.option("--link", default=None, help="A site path like /coops or an http(s) URL.")
def notify(user_id: str, category: str, subtype: str, title: str, body: str, link: str | None) -> None:
    """Send a notification to USER_ID (stored, pushed live, e-mailed if opted in)."""
    try:
        row = notifications.notify_known_user(user_id, category, subtype, title, body, link)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    if row is None:
        click.echo(f"not sent: {user_id}'s preferences turn {category}/{subtype} off")
    else:
        click.echo(f"notification {row.id} sent to {user_id}")


commands = [notify]
