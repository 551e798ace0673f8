"""The public profile as an anonymous visitor sees it (API.md endpoint 15
without credentials), cached in Redis and checked by generation.

The directory, the leaderboard and every shared link open profiles without
credentials, and between two changes of a miner the answer is the same. It
is kept in the hash ``{ns}:profile:<user_id>`` (slot ``anonymous``) under
two generations (``services/generation_cache.py``):

- the miner's own, forgotten after every commit that writes their ``users``,
  ``user_settings``, ``user_profiles`` or ``miner_stats`` row: a name, a
  field's visibility or ``publicProfile`` changes the next answer at once;
- the shared ``{ns}:profile-ranks``, forgotten after every commit that can
  move anyone's ``leaderboard_rank``: a registered miner's best difficulty
  rising (``mining.rollups``), a miner joining or leaving the leaderboard
  (any write of their settings), a user created over an address that
  already mined, or deleted.

ORM writes of those four models forget by themselves (``track``); Core
statements say so (``CACHE.changed`` inside their transaction: the ingest's
stats upsert, the account deletion, the demo reset). A logged-in viewer's
answer depends on their own standing with the miner (a block, a friendship)
and is always read from the database. The route reads the cache in its
rate-limit hit's Redis round trip (``generation_cache.prefetch``).
``PROFILE_CACHE_TTL`` seconds
without a change bound what a process dying between a commit and its
forget could leave behind (docs/DEPLOYMENT.md).
"""
from __future__ import annotations

from ..models import MinerStats, User, UserProfile, UserSettings
from .generation_cache import GenerationCache

ANONYMOUS = "anonymous"  # the slot: what a visitor without credentials sees

CACHE = GenerationCache("profile", "PROFILE_CACHE_TTL", shared="profile-ranks")
# A new user over an address that already mined joins the ranking; a
# deleted one leaves it; settings carry showOnLeaderboard; stats the best.
CACHE.track(User, lambda row: row.user_id, shared_on=("insert", "delete"))
CACHE.track(UserSettings, lambda row: row.user_id, shared_on=("insert", "update", "delete"))
CACHE.track(UserProfile, lambda row: row.user_id)
CACHE.track(MinerStats, lambda row: row.user_id, shared_on=("insert", "update", "delete"))
