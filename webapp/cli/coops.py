"""``flask coops ...``: look at cooperatives and run the hashrate aggregation now."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from ..extensions import db
from ..models import MAX_COOP_MEMBERS, Cooperative
from ..services.membership import is_active_coop
from . import WholeNumber

coops_cli = AppGroup("coops", help="Cooperatives: list, show, aggregate hashrate.")


@coops_cli.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include dissolved coops.")
def list_coops(show_all: bool) -> None:
    """One line per coop: id, status, members, combined hashrate (H/s), name."""
    stmt = select(Cooperative).order_by(Cooperative.id)
    if not show_all:
        stmt = stmt.where(is_active_coop())
    for coop in db.session.scalars(stmt):
        click.echo(f"{coop.id}\t{coop.status}\t{coop.member_count}/{MAX_COOP_MEMBERS}\t"
                   f"{coop.total_hashrate:.4g}\t{coop.name}")


@coops_cli.command("show")
@click.argument("coop_id", type=WholeNumber(1, 2**31 - 1))
def show(coop_id: int) -> None:
    """A coop's invite code and active members with their live hashrate."""
    from ..services import coops

    coop = db.session.get(Cooperative, coop_id)
    if coop is None:
        raise click.ClickException(f"no cooperative {coop_id}")
    click.echo(f"{coop.name} [{coop.status}] invite code {coop.invite_code}, admin {coop.admin_user_id}")
    for member in coops.members_of(coop.id):
        click.echo(f"  {member.role:6}\t{member.hashrate:.4g} H/s\t{'online' if member.is_online else 'offline'}\t"
                   f"{member.user_id} ({member.display_name})")


@coops_cli.command("aggregate")
def aggregate() -> None:
    """Run the combined-hashrate aggregation now (what the 5-minute job does)."""
    from ..services import coop_hashrate

    click.echo(f"updated {coop_hashrate.aggregate_all()} cooperative(s)")


commands = [coops_cli]
