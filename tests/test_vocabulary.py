"""The vocabulary equals the stored strings, and the catalogue of
notification kinds gives the preference defaults and toggles used before."""
from __future__ import annotations

import pytest

from webapp import models
from webapp.services import catalogue, preferences
from webapp.vocabulary import (
    CoopStatus,
    DeliveryStatus,
    MemberRole,
    MemberStatus,
    NotificationCategory,
    NotificationSubtype,
)


def test_enum_values_are_the_stored_strings():
    assert models.COOP_STATUSES == ("active", "dissolved")
    assert models.MEMBER_ROLES == ("admin", "moderator", "member")
    assert models.MEMBER_STATUSES == ("active", "left", "removed")
    assert models.DELIVERY_STATUSES == ("pending", "sending", "sent", "failed", "held")
    assert models.DELIVERY_CHANNELS == ("email", "push")
    assert models.NOTIFICATION_CATEGORIES == ("mining", "gamification", "competition", "social", "system")
    assert all(type(v) is str for v in models.COOP_STATUSES + models.NOTIFICATION_CATEGORIES)
    assert CoopStatus.ACTIVE == "active" and MemberRole.ADMIN == "admin" and MemberStatus.LEFT == "left"
    assert DeliveryStatus.SENT == "sent" and f"{NotificationCategory.SOCIAL}" == "social"


def test_the_catalogue_gives_the_toggles_and_defaults_of_the_settings_document():
    assert preferences.SUBTYPE_TOGGLES == {
        "personalBest": ("mining", ("personal_best",), True),
        "blockFoundAny": ("mining", ("block_found_any",), False),
        "workerStatus": ("mining", ("worker_offline", "worker_online"), True),
        "badgeEarned": ("gamification", ("badge_earned",), True),
        "coopActivity": ("social", ("coop_member_joined", "coop_member_left", "coop_removed", "coop_new_admin",
                                    "coop_dissolved", "coop_join_request"), True),
        "chatMentions": ("social", ("mention",), True),
        "chatUnread": ("social", ("chat_unread",), True),
        "coopDigest": ("social", (), True),
    }
    assert preferences.EMAIL_CATEGORIES == ("mining", "competition", "system")
    assert [c.name for c in catalogue.CATEGORIES] == list(NotificationCategory)
    defaults = preferences.default_notifications()
    assert {k: defaults[k] for k in preferences.SUBTYPE_TOGGLES} == {
        "personalBest": True, "blockFoundAny": False, "workerStatus": True, "badgeEarned": True, "coopActivity": True,
        "chatMentions": True, "chatUnread": True, "coopDigest": True}


def test_every_kind_is_consistent():
    toggles = {t.key: t for t in catalogue.TOGGLES}
    assert len(catalogue.KIND) == len(catalogue.KINDS)
    for kind in catalogue.KINDS:
        assert kind.subtype in NotificationSubtype.__members__.values()
        if kind.toggle is not None:
            assert toggles[kind.toggle].category == kind.category
        assert kind.email == (kind.category in preferences.EMAIL_CATEGORIES)


@pytest.mark.parametrize(("subtype", "values", "expected"), [
    ("coop_member_joined", {"member": "Ana", "coop": "Crew"}, ("New member joined", "Ana joined Crew.")),
    ("coop_removed", {"coop": "Crew"}, ("Removed from cooperative",
                                        "The admin of Crew removed you from the cooperative.")),
    ("admin_coop_renamed", {"old": "A", "new": "B"}, ("Cooperative renamed", "The platform admins renamed A to B.")),
])
def test_kinds_render_their_templates(subtype, values, expected):
    assert catalogue.KIND[subtype].render(**values) == expected


def test_a_kind_whose_sender_writes_the_text_does_not_render():
    with pytest.raises(ValueError):
        catalogue.KIND["broadcast"].render()


def test_coop_templates_take_the_member_cap_from_the_app():
    from pathlib import Path

    templates = Path(models.__file__).parent / "templates" / "coops"
    for path in templates.glob("*.html"):
        text = path.read_text()
        assert "/20" not in text and " 20 " not in text and ">= 20" not in text, path.name


def test_the_member_cap_reaches_the_templates(app):
    from flask import render_template_string

    with app.test_request_context():
        assert render_template_string("{{ MAX_COOP_MEMBERS }}") == str(models.MAX_COOP_MEMBERS)
