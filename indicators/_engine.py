"""The one-pass numba engine behind support/resistance zones and their flips.

Private module: :mod:`indicators.levels` and :mod:`indicators.flips` are the public faces.

The engine walks the bars once. On each bar ``b`` it

1. adds the pivots confirmed on ``b`` to the zone set (online clustering, below);
2. advances pending breaks (acceptance closes, failed retests, reclaims, expiry) -> flip events;
3. records retests of zones flipped on an earlier bar;
4. starts pending breaks for zones the close of ``b`` broke through (beyond the buffer);
5. with ``want_log`` or ``want_bars``, appends one row per zone whose state changed on ``b``
   (born, joined by a pivot, absorbed into a neighbour, flipped) to the zone log: that zone's
   state as of the close of ``b``. Replaying the log up to bar ``t`` gives the zone set known at
   ``t`` (:mod:`indicators.keylevels` ranks levels and picks targets from it); it holds one row
   per change, so its size grows with the pivots and flips, not with bars x zones;
6. writes the per-bar outputs (nearest zone below/above the close, nearest flipped zones), each
   as the zone log row of that zone's state on ``b`` (an int32 code; -1: no such zone), so a bar
   costs 16 bytes instead of 12 float64 bands (:func:`indicators.levels.zone_bands` decodes
   them: the log row's centre, low and high, the same values bit for bit).

Online clustering. A confirmed pivot at price ``p`` with tolerance ``tol`` joins the zone whose
centre is nearest to ``p`` (ties: the lower zone) when ``|centre - p| <= tol``; otherwise it starts
a new zone. After a join the zone's centre (the mean of its member pivot prices) moves, so the
zone absorbs neighbouring zones whose centres are now within ``tol`` (repeatedly, the nearer
neighbour first); the absorbing zone keeps its id and its flip state. A zone's band is
``[min(member) - pad, max(member) + pad]`` with ``pad`` taken from its most recent member.

Because the zone set after bar ``t`` is a deterministic function of the pivots confirmed up to
``t`` (processed in confirmation order, the high before the low on the same bar), the per-bar
outputs and a snapshot computed on ``df[: t + 1]`` are identical by construction: this is the
"incremental clustering equals re-clustering" property the tests check.

Zones are stored in append-only arrays indexed by zone id; three id arrays kept sorted by centre
(all live zones, zones flipped support->resistance, zones flipped resistance->support) give
O(log Z) nearest-level queries.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from data import jit

# event kinds
EV_S2R = 1
EV_R2S = 2
EV_RETEST_S2R = 3  # a support->resistance zone retested from below and rejected
EV_RETEST_R2S = 4  # a resistance->support zone retested from above and held
# how an event was confirmed
BY_CLOSES = 0
BY_FAILED_RETEST = 1
BY_REJECTION = 2

# zone kind bits
KIND_HIGH = 1
KIND_LOW = 2

# Explicit signatures for the helpers: without them numba compiles one specialisation per
# call site whose constant arguments differ (Literal[int](2) vs int64), several seconds of
# first-run compile time for the same machine code. Compiled with level_engine, not on import
# (jit.typed).
_F1 = nb.float64[::1]
_I1 = nb.int64[::1]
_F2 = nb.float64[:, ::1]
_I2 = nb.int64[:, ::1]
_i8 = nb.int64
_f8 = nb.float64
_SIG_PUSH = nb.void(_F2, _I2, _i8, _f8, _f8, _f8, _f8, _i8, _i8, _i8, _i8, _i8)
_SIG_BISECT = _i8(_I1, _i8, _F1, _f8)
_SIG_ORDER = nb.void(_I1, _I1, _i8, _i8, _F1)
_SIG_SKIP = _i8(_I1, _i8, _i8, _F1, _f8)
_SIG_FIND = _i8(_I1, _i8, _i8, _i8, _F1)
_SIG_DROP = nb.void(_I1, _I1, _i8, _i8)
_SIG_MOVE = nb.void(_I1, _i8, _i8)


@jit.typed(_SIG_PUSH)
def _push_event(evf, evi, nev, level, low, high, break_close, bar, kind, zone, break_bar,
                by):  # pragma: no cover - compiled
    """Write event number ``nev`` into column ``nev`` of the buffers when they have room (the
    caller counts every event; a run that outgrows them is repeated with room for all)."""
    if nev < evf.shape[1]:
        evf[0, nev] = level
        evf[1, nev] = low
        evf[2, nev] = high
        evf[3, nev] = break_close
        evi[0, nev] = bar
        evi[1, nev] = kind
        evi[2, nev] = zone
        evi[3, nev] = break_bar
        evi[4, nev] = by


@jit.typed(_SIG_SKIP, inline="always")
def _bisect_left_skip(order, n, skip, zcen, x):  # pragma: no cover - compiled
    # First index of the ``n`` ordered zones (slots ``order[:n + 1]`` without slot ``skip``;
    # ``skip >= n``: plain ``order[:n]``) whose centre is >= x; a virtual index, slots after
    # ``skip`` count one less.
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        z = order[mid if mid < skip else mid + 1]
        if zcen[z] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit.typed(_SIG_BISECT, inline="always")
def _bisect_left(order, cnt, zcen, x):  # pragma: no cover - compiled
    return _bisect_left_skip(order, cnt, cnt, zcen, x)


@jit.typed(_SIG_BISECT, inline="always")
def _bisect_right(order, cnt, zcen, x):  # pragma: no cover - compiled
    lo = 0
    hi = cnt
    while lo < hi:
        mid = (lo + hi) >> 1
        z = order[mid]
        if zcen[z] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit.typed(_SIG_ORDER)
def _insert(order, cnts, k, z, zcen):  # pragma: no cover - compiled
    cnt = cnts[k]
    pos = _bisect_left(order, cnt, zcen, zcen[z])
    for j in range(cnt, pos, -1):
        order[j] = order[j - 1]
    order[pos] = z
    cnts[k] = cnt + 1


@jit.typed(_SIG_FIND)
def _index_of(order, cnt, skip, z, zcen):  # pragma: no cover - compiled
    # Slot of zone ``z`` in ``order[:cnt]`` ignoring slot ``skip`` (-1: none), found by its
    # current centre as _remove finds it; a scan if the search misses (it cannot in a consistent
    # order).
    n = cnt - 1 if skip >= 0 else cnt
    sk = skip if skip >= 0 else cnt
    v = _bisect_left_skip(order, n, sk, zcen, zcen[z])
    while v < n:
        j = v if v < sk else v + 1
        if order[j] == z:
            return j
        v += 1
    for j in range(cnt):
        if order[j] == z and j != skip:
            return j
    return -1


@jit.typed(_SIG_DROP)
def _drop_at(order, cnts, k, j):  # pragma: no cover - compiled
    cnt = cnts[k]
    for r in range(j, cnt - 1):
        order[r] = order[r + 1]
    cnts[k] = cnt - 1


@jit.typed(_SIG_ORDER)
def _remove(order, cnts, k, z, zcen):  # pragma: no cover - compiled
    # Must run before z's centre changes: the binary search uses the current centre.
    j = _index_of(order, cnts[k], -1, z, zcen)
    if j >= 0:
        _drop_at(order, cnts, k, j)


@jit.typed(_SIG_MOVE)
def _move(order, i, q):  # pragma: no cover - compiled
    # Move the element in slot ``i`` to the virtual index ``q`` of the order without it: the same
    # array as removing it and inserting it at ``q``, shifting only the slots in between.
    z = order[i]
    if q < i:
        for j in range(i, q, -1):
            order[j] = order[j - 1]
    else:
        for j in range(i, q):
            order[j] = order[j + 1]
    order[q] = z


@jit.typed(_i8(_I1, _I1, _i8, _i8, _i8))
def _mark(zmark, dirty, nd, z, b):  # pragma: no cover - compiled
    """List zone ``z`` as changed on bar ``b`` (once per bar); returns the new list length."""
    if zmark[z] != b:
        zmark[z] = b
        dirty[nd] = z
        nd += 1
    return nd


# Margin on the relative half-width bound: ``maxrel`` is itself a rounded quotient, so widen it
# far beyond rounding error (the scans only need an upper bound on how many zones to look at).
_REL_SLACK = 1e-9


@jit.typed(_f8(_f8, _f8, _f8))
def _upper_centre(x, maxhalf, maxrel):  # pragma: no cover - compiled
    """Centre above which no zone can have its low at or below ``x``: ``x + maxhalf``, or for
    positive centres ``x / (1 - maxrel)`` when that is tighter (zones with centre <= 0 always
    stay in range)."""
    hi = x + maxhalf
    r = maxrel * (1.0 + _REL_SLACK) + _REL_SLACK
    if r < 1.0:
        rel = x / (1.0 - r) * (1.0 + _REL_SLACK) if x > 0 else 0.0
        hi = min(hi, rel)
    return hi


@jit.typed(_f8(_f8, _f8, _f8, nb.boolean))
def _lower_centre(x, maxhalf, maxrel, nonpos):  # pragma: no cover - compiled
    """Centre below which no zone can have its high at or above ``x``: ``x - maxhalf``, or
    ``x / (1 + maxrel)`` when tighter, ``x > 0`` and no zone ever had a centre <= 0
    (``nonpos``: such zones are bounded by ``maxhalf`` only)."""
    lo = x - maxhalf
    if x > 0 and not nonpos:
        r = maxrel * (1.0 + _REL_SLACK) + _REL_SLACK
        lo = max(lo, x / (1.0 + r) * (1.0 - _REL_SLACK))
    return lo


@jit.typed(_i8(_i8))
def _flip_order_key(flip):  # pragma: no cover - compiled
    # index into cnts of the flipped-zone order for a flip state (-1 s->r, +1 r->s)
    return 1 if flip == -1 else 2


@nb.njit(cache=True)
def atr_warm_fill(ta, high, low):  # pragma: no cover - compiled
    """A copy of ``ta`` (TA-Lib's ATR) with each NaN replaced by the running mean of
    ``high - low`` up to that bar: numpy's ``cumsum(high - low) / arange(1, n + 1)`` (a
    sequential sum, divided by the count), the same values bit for bit, in one pass and one
    output array (numpy's temporaries of this size are put on huge pages, whose allocation
    compacts memory: ~0.4 s of system time at 10M bars here)."""
    n = ta.shape[0]
    out = np.empty(n)
    s = 0.0
    for i in range(n):
        r = high[i] - low[i]
        s = s + r if i > 0 else r
        out[i] = s / (i + 1) if ta[i] != ta[i] else ta[i]
    return out


@nb.njit(cache=True)
def relative_volume_kernel(v, bars):  # pragma: no cover - compiled
    """``v[i]`` over the mean of ``v[max(i + 1 - bars, 0) : i + 1]`` (0 where that mean is not
    > 0). The same operations in the same order as the numpy form (prefix sums from 0.0,
    difference of two prefix sums over the count), so the same values bit for bit, with one
    output array instead of ten full-length temporaries."""
    n = v.shape[0]
    out = np.empty(n)
    # prefix sums csum[k] = v[0] + ... + v[k - 1], kept for the last ``bars`` + 1 values of k
    w = bars + 1
    ring = np.empty(w)
    ring[0] = 0.0
    s = 0.0
    for i in range(n):
        k = i + 1
        s = s + v[i] if i > 0 else v[i]  # numpy's cumsum starts at v[0], not 0.0 + v[0]
        ring[k % w] = s
        lo = k - bars if k > bars else 0
        mean = (s - ring[lo % w]) / (k - lo)
        out[i] = v[i] / mean if mean > 0 else 0.0
    return out


@nb.njit(cache=True)
def level_engine(
    high,
    low,
    close,
    volume,
    relvol,
    hb,
    lb,
    right,
    atr,
    tol_pct,
    tol_atr,
    band_pct,
    band_atr,
    buffer_pct,
    buffer_atr,
    min_touches,
    confirm_closes,
    window,
    want_bars,
    want_log,
    ecap,
    lcap,
):  # pragma: no cover - compiled
    n = close.shape[0]
    cap = 1
    cap += hb.shape[0] + lb.shape[0]
    ih = 0  # next pivot high / low (pivot bars ascending, each confirmed ``right`` bars later)
    il = 0
    # Zone state, indexed by zone id. np.empty: every field is set when the zone is born
    # (below), so only the slots of zones that exist are ever touched (cap counts every pivot
    # as a possible zone; first-touch page faults are the costly part of large buffers here).
    zsum = np.empty(cap)
    zcnt = np.empty(cap, np.int64)
    # centre = zsum / zcnt, kept in step with them: the searches compare centres on every bar
    # and a load is cheaper than a division at each step (the same value, bit for bit)
    zcen = np.empty(cap)
    zmin = np.empty(cap)
    zmax = np.empty(cap)
    zpad = np.empty(cap)
    zfirst = np.empty(cap, np.int64)
    zlast = np.empty(cap, np.int64)
    zkind = np.empty(cap, np.int64)
    zvol = np.empty(cap)
    zrv = np.empty(cap)  # sum of the touches' relative volumes
    zalive = np.empty(cap, np.bool_)
    zflip = np.empty(cap, np.int64)
    zflipbar = np.empty(cap, np.int64)
    zfbbar = np.empty(cap, np.int64)  # break bar of the zone's current flip
    zfbclose = np.empty(cap)
    zpend = np.empty(cap, np.int64)
    zpbar = np.empty(cap, np.int64)
    zpclose = np.empty(cap)
    zpcount = np.empty(cap, np.int64)
    zmark = np.empty(cap, np.int64)  # last bar on which the zone was listed in ``dirty``
    nz = 0
    # 0 all live, 1 flipped s->r, 2 flipped r->s; only the first cnts[k] slots are read
    orders = np.empty((3, cap), np.int64)
    cnts = np.zeros(3, np.int64)
    pend = np.empty(cap, np.int64)
    npend = 0
    # Bounds on any zone's half-width (absolute, and relative to a positive centre) let the
    # retest scan stop early; the relative bound keeps it short when prices span decades.
    maxhalf = 0.0
    maxrel = 0.0
    nonpos = False  # some zone had a centre <= 0 (never with prices > 0)

    # Per-bar outputs, one row per column (each column contiguous): nearest support,
    # resistance, flipped resistance, flipped support, each as the zone log row of its state
    # (-1: none). Every cell is written on its bar, so no fill pass.
    m = n if want_bars else 0
    codes = np.empty((4, m), np.int32)
    flags = np.zeros((4, m), np.bool_)  # breakdown, breakout, retest_rejected, retest_held

    # Event and zone log buffers of the capacities asked for (untouched beyond the rows
    # written). They are never replaced during the run: an array variable rebound inside the
    # bar loop (buffers grown on demand) made numba update reference counts atomically on every
    # bar and inner iteration, ~40 % of the run. Events and log rows past the capacity are
    # counted, not written; the caller repeats the run with room for all of them.
    evf = np.empty((4, ecap))  # level, level_low, level_high, break_close
    evi = np.empty((5, ecap), np.int64)  # bar, kind, zone, break_bar, confirmed_by
    nev = 0
    # the per-bar codes point into the log: it is written for them too
    logged = want_log or want_bars
    lcap = lcap if logged else 0
    # centre, low, high, volume, relvol sum / bar, zone, alive, touches, first, last, kind,
    # flip, flip bar; without want_log only the bands (all the codes need)
    lf = np.empty((lcap, 5 if want_log else 3))
    # int32: bars, zone ids and touches stay below 2**31 (36 instead of 72 bytes a row; ~0.25
    # rows a bar on minute data, held while a strategy works out its level targets)
    li = np.empty((lcap if want_log else 0, 9), np.int32)
    nl = 0
    dirty = np.empty(cap, np.int64)  # zones changed on this bar (each listed once)
    zrow = np.empty(cap, np.int64)  # the zone's latest log row (set when it is born)
    ndirty = 0

    # the three orders' rows bound once: a row view made on every use costs two atomic
    # reference-count updates
    o0 = orders[0]
    o1 = orders[1]
    o2 = orders[2]
    for b in range(n):
        # ---- 1. pivots confirmed on this bar (high first, then low) ----
        for side in range(2):
            if side == 0:
                if ih >= hb.shape[0] or hb[ih] + right != b:
                    continue
                pbar = hb[ih]
                ih += 1
                p = high[pbar]
                kbit = KIND_HIGH
            else:
                if il >= lb.shape[0] or lb[il] + right != b:
                    continue
                pbar = lb[il]
                il += 1
                p = low[pbar]
                kbit = KIND_LOW
            # tolerance and pad of this pivot (the same expressions as numpy's over all bars)
            tol = p * tol_pct / 100.0 if tol_pct == tol_pct else atr[b] * tol_atr
            pad = p * band_pct / 100.0 if band_pct == band_pct else atr[b] * band_atr
            pos = _bisect_left(o0, cnts[0], zcen, p)
            best = -1
            i0 = -1  # slot of ``best`` in the order
            bestd = np.inf
            if pos > 0:
                z = o0[pos - 1]
                best = z
                i0 = pos - 1
                bestd = p - zcen[z]
            if pos < cnts[0]:
                z = o0[pos]
                d = zcen[z] - p
                if d < bestd:
                    best = z
                    i0 = pos
                    bestd = d
            if best >= 0 and bestd <= tol:
                # The joined zone stays in its slots (treated as absent while its centre is
                # stale) and moves to its new place at the end: the same orders as removing and
                # re-inserting it, but shifting only the slots in between (a centre moves little)
                # instead of every zone above it.
                z = best
                fk = _flip_order_key(zflip[z]) if zflip[z] != 0 else 0
                i1 = _index_of(orders[fk], cnts[fk], -1, z, zcen) if fk else -1
                zsum[z] += p
                zcnt[z] += 1
                zcen[z] = zsum[z] / zcnt[z]
                zmin[z] = min(zmin[z], p)
                zmax[z] = max(zmax[z], p)
                zpad[z] = pad
                zfirst[z] = min(zfirst[z], pbar)
                zlast[z] = max(zlast[z], pbar)
                zkind[z] |= kbit
                zvol[z] += volume[pbar]
                zrv[z] += relvol[pbar]
                # absorb neighbours whose centres came within the tolerance
                while True:
                    c = zcen[z]
                    q = _bisect_left_skip(o0, cnts[0] - 1, i0, zcen, c)
                    nb_ = -1
                    nd = np.inf
                    jy = -1
                    if q > 0:
                        j = q - 1 if q - 1 < i0 else q
                        y = o0[j]
                        nd = c - zcen[y]
                        nb_ = y
                        jy = j
                    if q < cnts[0] - 1:
                        j = q if q < i0 else q + 1
                        y = o0[j]
                        d = zcen[y] - c
                        if d < nd:
                            nd = d
                            nb_ = y
                            jy = j
                    if nb_ < 0 or nd > tol:
                        break
                    y = nb_
                    _drop_at(o0, cnts, 0, jy)
                    if jy < i0:
                        i0 -= 1
                    if zflip[y] != 0:
                        ky = _flip_order_key(zflip[y])
                        skip = i1 if ky == fk else -1
                        j = _index_of(orders[ky], cnts[ky], skip, y, zcen)
                        if j >= 0:
                            _drop_at(orders[ky], cnts, ky, j)
                            if ky == fk and j < i1:
                                i1 -= 1
                    if zpend[y] != 0:
                        for k in range(npend):
                            if pend[k] == y:
                                pend[k] = pend[npend - 1]
                                npend -= 1
                                break
                        zpend[y] = 0
                    zsum[z] += zsum[y]
                    zcnt[z] += zcnt[y]
                    zcen[z] = zsum[z] / zcnt[z]
                    zmin[z] = min(zmin[z], zmin[y])
                    zmax[z] = max(zmax[z], zmax[y])
                    zfirst[z] = min(zfirst[z], zfirst[y])
                    zlast[z] = max(zlast[z], zlast[y])
                    zkind[z] |= zkind[y]
                    zvol[z] += zvol[y]
                    zrv[z] += zrv[y]
                    zalive[y] = False
                    ndirty = _mark(zmark, dirty, ndirty, y, b)
                c = zcen[z]
                _move(o0, i0, _bisect_left_skip(o0, cnts[0] - 1, i0, zcen, c))
                if fk:
                    _move(orders[fk], i1, _bisect_left_skip(orders[fk], cnts[fk] - 1, i1, zcen,
                                                            c))
            else:
                z = nz
                nz += 1
                zsum[z] = p
                zcnt[z] = 1
                zcen[z] = zsum[z] / zcnt[z]
                zmin[z] = p
                zmax[z] = p
                zpad[z] = pad
                zfirst[z] = pbar
                zlast[z] = pbar
                zkind[z] = kbit
                zvol[z] = volume[pbar]
                zrv[z] = relvol[pbar]
                zalive[z] = True
                zflip[z] = 0
                zflipbar[z] = -1
                zfbbar[z] = -1
                zfbclose[z] = np.nan
                zpend[z] = 0
                zpbar[z] = -1
                zpclose[z] = np.nan
                zpcount[z] = 0
                zmark[z] = -1
                _insert(o0, cnts, 0, z, zcen)
            ndirty = _mark(zmark, dirty, ndirty, z, b)
            c = zcen[z]
            half = max(c - (zmin[z] - zpad[z]), zmax[z] + zpad[z] - c)
            maxhalf = max(maxhalf, half)
            if c > 0:
                maxrel = max(maxrel, half / c)
            else:
                nonpos = True

        cb = close[b]
        # the break buffer on this bar
        bufb = cb * buffer_pct / 100.0 if buffer_pct == buffer_pct else atr[b] * buffer_atr
        # ---- 2. pending breaks ----
        k = 0
        while k < npend:
            z = pend[k]
            zl = zmin[z] - zpad[z]
            zh = zmax[z] + zpad[z]
            flip = 0
            how = BY_CLOSES
            done = False
            if zpend[z] == -1:
                if high[b] >= zl and cb < zl:
                    flip = -1
                    how = BY_FAILED_RETEST
                elif cb < zl - bufb:
                    zpcount[z] += 1
                    if zpcount[z] >= confirm_closes:
                        flip = -1
                elif cb >= zl:
                    done = True  # reclaimed: the break failed
            else:
                if low[b] <= zh and cb > zh:
                    flip = 1
                    how = BY_FAILED_RETEST
                elif cb > zh + bufb:
                    zpcount[z] += 1
                    if zpcount[z] >= confirm_closes:
                        flip = 1
                elif cb <= zh:
                    done = True
            if flip != 0:
                if zflip[z] != 0:
                    kk = _flip_order_key(zflip[z])
                    _remove(orders[kk], cnts, kk, z, zcen)
                zflip[z] = flip
                zflipbar[z] = b
                ndirty = _mark(zmark, dirty, ndirty, z, b)
                zfbbar[z] = zpbar[z]
                zfbclose[z] = zpclose[z]
                kk = _flip_order_key(flip)
                _insert(orders[kk], cnts, kk, z, zcen)
                _push_event(evf, evi, nev, zcen[z], zl, zh, zpclose[z], b,
                            EV_S2R if flip == -1 else EV_R2S, z, zpbar[z], how)
                nev += 1
                if want_bars:
                    flags[0 if flip == -1 else 1, b] = True
                done = True
            elif not done and b - zpbar[z] >= window:
                done = True  # not accepted in time
            if done:
                zpend[z] = 0
                pend[k] = pend[npend - 1]
                npend -= 1
            else:
                k += 1

        # Slots of the first zone with centre > cb in each order, found once per bar where the
        # steps below can share them (-1: not found yet; the orders only change in steps 1-2
        # and in the flips confirmed on the breaking close).
        r0 = -1
        r1 = -1
        r2 = -1
        if b > 0:
            cp = close[b - 1]
            # ---- 3. retests of zones flipped on an earlier bar ----
            r1 = _bisect_right(o1, cnts[1], zcen, cb)
            q = r1
            while q < cnts[1]:
                z = o1[q]
                c = zcen[z]
                if c - maxhalf > high[b] or (c > 0 and c * (1.0 - maxrel) > high[b]):
                    break  # this zone and all above it have their low above the bar's high
                zl = zmin[z] - zpad[z]
                if zflipbar[z] < b and high[b] >= zl and cb < zl and cp < zl:
                    _push_event(evf, evi, nev, zcen[z], zl, zmax[z] + zpad[z], zfbclose[z], b,
                                EV_RETEST_S2R, z, zfbbar[z], BY_REJECTION)
                    nev += 1
                    if want_bars:
                        flags[2, b] = True
                q += 1
            r2 = _bisect_right(o2, cnts[2], zcen, cb)
            q = r2 - 1
            while q >= 0:
                z = o2[q]
                c = zcen[z]
                if c + maxhalf < low[b] or (c > 0 and c * (1.0 + maxrel) < low[b]):
                    break  # this zone and all below it have their high under the bar's low
                zh = zmax[z] + zpad[z]
                if zflipbar[z] < b and low[b] <= zh and cb > zh and cp > zh:
                    _push_event(evf, evi, nev, zcen[z], zmin[z] - zpad[z], zh, zfbclose[z], b,
                                EV_RETEST_R2S, z, zfbbar[z], BY_REJECTION)
                    nev += 1
                    if want_bars:
                        flags[3, b] = True
                q -= 1

            # ---- 4. new breaks by this bar's close ----
            # A zone holds while the close is at or beyond its near edge: the previous close
            # inside the band (even below its centre) still had the support/resistance intact.
            # Centres within a half-width of the previous close can qualify (maxhalf and maxrel
            # bound it: without the relative bound, one wide zone at a high price made every
            # later bar scan all zones once prices had fallen far below it).
            if cb < cp:
                # zones the previous close was not below (zone low <= cp) and lie above cb
                q0 = _bisect_right(o0, cnts[0], zcen, cb)
                r0 = q0
                q1 = _bisect_right(o0, cnts[0], zcen, _upper_centre(cp, maxhalf, maxrel))
                for q in range(q0, q1):
                    z = o0[q]
                    if zcnt[z] < min_touches or zflip[z] == -1 or zpend[z] == -1:
                        continue
                    zl = zmin[z] - zpad[z]
                    if zl <= cp and cb < zl - bufb:
                        zpend[z] = -1
                        zpbar[z] = b
                        zpclose[z] = cb
                        zpcount[z] = 0
                        pend[npend] = z
                        npend += 1
            elif cb > cp:
                # zones the previous close was not above (zone high >= cp) and lie below cb
                q0 = _bisect_left(o0, cnts[0], zcen, _lower_centre(cp, maxhalf, maxrel, nonpos))
                q1 = _bisect_left(o0, cnts[0], zcen, cb)
                r0 = q1  # first centre >= cb; past the centres equal to cb: first > cb
                while r0 < cnts[0] and zcen[o0[r0]] <= cb:
                    r0 += 1
                for q in range(q0, q1):
                    z = o0[q]
                    if zcnt[z] < min_touches or zflip[z] == 1 or zpend[z] == 1:
                        continue
                    zh = zmax[z] + zpad[z]
                    if zh >= cp and cb > zh + bufb:
                        zpend[z] = 1
                        zpbar[z] = b
                        zpclose[z] = cb
                        zpcount[z] = 0
                        pend[npend] = z
                        npend += 1
            # a break confirmed by the breaking close itself (confirm_closes == 0)
            if confirm_closes == 0:
                k = 0
                while k < npend:
                    z = pend[k]
                    if zpbar[z] == b:
                        flip = zpend[z]
                        r1 = -1  # the flipped orders change
                        r2 = -1
                        if zflip[z] != 0:
                            kk = _flip_order_key(zflip[z])
                            _remove(orders[kk], cnts, kk, z, zcen)
                        zflip[z] = flip
                        zflipbar[z] = b
                        ndirty = _mark(zmark, dirty, ndirty, z, b)
                        zfbbar[z] = b
                        zfbclose[z] = cb
                        kk = _flip_order_key(flip)
                        _insert(orders[kk], cnts, kk, z, zcen)
                        _push_event(evf, evi, nev, zcen[z], zmin[z] - zpad[z],
                                    zmax[z] + zpad[z], cb, b, EV_S2R if flip == -1 else EV_R2S,
                                    z, b, BY_CLOSES)
                        nev += 1
                        if want_bars:
                            flags[0 if flip == -1 else 1, b] = True
                        zpend[z] = 0
                        pend[k] = pend[npend - 1]
                        npend -= 1
                    else:
                        k += 1

        # ---- 5. the zones changed on this bar, as of its close, to the log ----
        if logged and ndirty > 0:
            for k in range(ndirty):
                z = dirty[k]
                zrow[z] = nl
                if nl >= lcap:  # counted, not written: the run is repeated with room for all
                    nl += 1
                    continue
                lf[nl, 0] = zcen[z]
                lf[nl, 1] = zmin[z] - zpad[z]
                lf[nl, 2] = zmax[z] + zpad[z]
                if want_log:
                    lf[nl, 3] = zvol[z]
                    lf[nl, 4] = zrv[z]
                    li[nl, 0] = b
                    li[nl, 1] = z
                    li[nl, 2] = 1 if zalive[z] else 0
                    li[nl, 3] = zcnt[z]
                    li[nl, 4] = zfirst[z]
                    li[nl, 5] = zlast[z]
                    li[nl, 6] = zkind[z]
                    li[nl, 7] = zflip[z]
                    li[nl, 8] = zflipbar[z]
                nl += 1
        ndirty = 0

        # ---- 6. per-bar outputs: the log row of each zone's state (after step 5) ----
        if want_bars:
            q = r0 if r0 >= 0 else _bisect_right(o0, cnts[0], zcen, cb)
            j = q - 1
            while j >= 0 and zcnt[o0[j]] < min_touches:
                j -= 1
            codes[0, b] = zrow[o0[j]] if j >= 0 else -1
            j = q
            while j < cnts[0] and zcnt[o0[j]] < min_touches:
                j += 1
            codes[1, b] = zrow[o0[j]] if j < cnts[0] else -1
            q = r1 if r1 >= 0 else _bisect_right(o1, cnts[1], zcen, cb)
            codes[2, b] = zrow[o1[q]] if q < cnts[1] else -1
            q = (r2 if r2 >= 0 else _bisect_right(o2, cnts[2], zcen, cb)) - 1
            codes[3, b] = zrow[o2[q]] if q >= 0 else -1

    zones = (zsum[:nz], zcnt[:nz], zmin[:nz], zmax[:nz], zpad[:nz], zfirst[:nz], zlast[:nz],
             zkind[:nz], zvol[:nz], zalive[:nz], zflip[:nz], zflipbar[:nz], zfbbar[:nz],
             zfbclose[:nz], zpend[:nz], zrv[:nz])
    return codes, flags, evf, evi, nev, zones, lf, li, nl
