"""Per-bar columns held compactly: :mod:`data.perbar` (where :mod:`indicators` and
:mod:`strategies` can use it too), under its former name."""

from data.perbar import RUN_FRACTION, ZONE_FRACTION, CompactFrame, Distance, ZoneGroup, compact

__all__ = ["RUN_FRACTION", "ZONE_FRACTION", "CompactFrame", "Distance", "ZoneGroup", "compact"]
