"""Fit a trend (and a weekly season) to one metric's history and forecast it with a band.

The history is first put on a regular grid: one value a day (the day's maximum,
so peaks are planned for, not averages) when it spans two weeks or more, else one
an hour (the maximum of the 24 hours up to it). With two full weeks or more,
Holt-Winters (statsmodels ``ExponentialSmoothing``, additive trend, additive
weekly season of 7 days) is fitted and its band comes from simulating the
fitted model; with less, an ordinary least-squares line, its band the OLS
prediction interval. Either way the fit error is measured on the held-out last
fifth (at least a week) of the history, fitted without it, before the model is
fitted again on all of it. Holt-Winters is tried on the values and on their
logarithm (exponential growth, a season in proportion); the one with the
smaller held-out error is used. The band's width is then scaled so that on the
held-out tail it covered the chosen share of what happened (a factor between
0.2 and 5).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from membank_server.domain.capacity import Sample

__all__ = [
    "METRICS",
    "MIN_SEASONS",
    "SEASON_DAYS",
    "Forecast",
    "Method",
    "fit_forecast",
    "forecast_samples",
]

Method = Literal["holt-winters", "linear"]
SEASON_DAYS = 7
#: Full weekly seasons needed before Holt-Winters is trusted over a line.
MIN_SEASONS = 2
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Forecast:
    """One metric's history on its grid, and its forecast one value a day ahead.

    ``lower``/``upper`` bound the central ``confidence`` share of outcomes.
    ``error_pct`` is the mean absolute percentage error on ``error_on`` (the
    held-out tail, or the fitted history when it was too short to hold any out).
    """

    metric: str
    method: Method
    history_at: list[datetime]
    history: np.ndarray
    at: list[datetime]
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    confidence: float
    error_pct: float
    error_on: str
    growth_per_day: float
    level: float
    #: ``log`` when Holt-Winters was fitted to the logarithm (exponential growth).
    scale: Literal["linear", "log"] = "linear"
    notes: list[str] = field(default_factory=list)

    @property
    def growth_pct_per_day(self) -> float:
        return 100 * self.growth_per_day / self.level if self.level else 0.0

    def at_day(self, days: int, band: Literal["mean", "upper", "lower"] = "mean") -> float:
        """The forecast ``days`` days after the last observation (1 = tomorrow)."""
        series = {"mean": self.mean, "upper": self.upper, "lower": self.lower}[band]
        return float(series[min(max(days, 1), len(series)) - 1])

    def first_above(
        self, limit: float, band: Literal["mean", "upper", "lower"] = "mean"
    ) -> datetime | None:
        """The first forecast day at or above ``limit``; None when it never gets there."""
        series = {"mean": self.mean, "upper": self.upper, "lower": self.lower}[band]
        hits = np.nonzero(series >= limit)[0]
        return self.at[int(hits[0])] if hits.size else None


def _grid(at: Sequence[datetime], values: Sequence[float]) -> tuple[pd.Series, bool]:
    """The series on a daily grid (two weeks or more) or an hourly one; True for daily."""
    index = pd.DatetimeIndex([a.astimezone(UTC).replace(tzinfo=None) for a in at])
    s = pd.Series(np.asarray(values, dtype=float), index=index)
    s = s[~s.index.duplicated(keep="last")].sort_index()
    daily = s.index[-1] - s.index[0] >= pd.Timedelta(days=MIN_SEASONS * SEASON_DAYS)
    # Calendar days (UTC), each labelled with its own date, so the weekly season
    # lines up with the weekday; a first or last day seen for less than 3/4 of it
    # is dropped, or its peak would read low.
    grid = s.resample("1D" if daily else "1h").max()
    if daily:
        day = pd.Timedelta(days=1)
        if s.index[-1] - grid.index[-1] < 0.75 * day:
            grid = grid.iloc[:-1]
        if grid.index[0] + day - s.index[0] < 0.75 * day:
            grid = grid.iloc[1:]
    else:
        # The peak of the 24 hours up to each hour: what a daily grid's day peak is, so
        # a line fitted to it plans for peaks, not for the night's lull.
        grid = grid.interpolate(limit_direction="both").rolling(24, min_periods=1).max()
    return grid.interpolate(limit_direction="both"), bool(daily)


def _mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    scale = np.maximum(np.abs(actual), 1e-9)
    return float(np.mean(np.abs(actual - predicted) / scale) * 100)


def _holt_winters(y: np.ndarray, notes: list[str]) -> object:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = ExponentialSmoothing(
            y,
            trend="add",
            seasonal="add",
            seasonal_periods=SEASON_DAYS,
            initialization_method="estimated",
        )
        # The brute-force start can settle where the trend smoothing equals the level's,
        # whose simulated trend wanders without bound; the other start often finds a
        # smaller error with a steady trend. Keep whichever fits better.
        fit = min(
            (model.fit(method="least_squares", use_brute=brute) for brute in (True, False)),
            key=lambda f: float(f.sse),
        )
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            notes.append(f"Holt-Winters optimizer: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return fit


@dataclass(frozen=True)
class _Fit:
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    fitted: np.ndarray
    slope_per_day: float
    level: float


def _fit_hw(
    y: np.ndarray, horizon: int, confidence: float, seed: int, notes: list[str], log: bool
) -> _Fit:
    """Holt-Winters on ``y``, or on ``log(y)``: exponential growth, a season in proportion."""
    z = np.log(y) if log else y
    fit = _holt_winters(z, notes)
    mean = np.asarray(fit.forecast(horizon))  # type: ignore[attr-defined]
    sims = np.asarray(
        fit.simulate(  # type: ignore[attr-defined]
            horizon, repetitions=400, error="add", anchor="end", rng=np.random.default_rng(seed)
        )
    ).reshape(horizon, -1)
    tail = (1 - confidence) / 2
    lower, upper = np.quantile(sims, [tail, 1 - tail], axis=1)
    fitted = np.asarray(fit.fittedvalues)  # type: ignore[attr-defined]
    slope = float(np.asarray(fit.trend)[-1])  # type: ignore[attr-defined]
    # The last week's mean carried to its end: the season averages out of it.
    level = float(z[-SEASON_DAYS:].mean() + slope * (SEASON_DAYS - 1) / 2)
    if log:
        mean, lower, upper, fitted = np.exp(mean), np.exp(lower), np.exp(upper), np.exp(fitted)
        level = math.exp(level)
        slope = level * math.expm1(slope)
    return _Fit(mean, lower, upper, fitted, slope, level)


#: How far the held-out tail may stretch or shrink the model's band.
_STRETCH_LIMITS = (0.2, 5.0)


def _stretch(actual: np.ndarray, held: _Fit, confidence: float) -> float:
    """The factor that makes the held-out fit's band cover ``confidence`` of the tail.

    A fitted Holt-Winters whose trend smoothing came out high simulates a trend
    that wanders far more than the history did (or the reverse); the tail it
    did not see says by how much, and the final band is scaled by that.
    """
    above = actual >= held.mean
    half = np.where(above, held.upper - held.mean, held.mean - held.lower)
    ratio = np.abs(actual - held.mean) / np.maximum(half, 1e-12 * np.abs(held.mean) + 1e-12)
    return float(np.clip(np.quantile(ratio, confidence), *_STRETCH_LIMITS))


def _fit_line(t: np.ndarray, y: np.ndarray, ahead: np.ndarray, confidence: float) -> _Fit:
    fit = sm.OLS(y, sm.add_constant(t)).fit()
    frame = fit.get_prediction(sm.add_constant(ahead, has_constant="add")).summary_frame(
        alpha=1 - confidence
    )
    # t is in days, so the slope is per day.
    slope = float(fit.params[1])
    return _Fit(
        frame["mean"].to_numpy(),
        frame["obs_ci_lower"].to_numpy(),
        frame["obs_ci_upper"].to_numpy(),
        np.asarray(fit.fittedvalues),
        slope,
        float(fit.params[0] + slope * t[-1]),
    )


def fit_forecast(
    metric: str,
    at: Sequence[datetime],
    values: Sequence[float],
    horizon_days: int,
    *,
    confidence: float = 0.9,
    seed: int = 0,
) -> Forecast:
    """Forecast ``values`` (observed at ``at``) one value a day for ``horizon_days`` days.

    Raises:
        ValueError: fewer than three observations, or none that are finite.
    """
    grid, daily = _grid(at, values)
    if len(grid) < 3 or not np.isfinite(grid.to_numpy()).any():
        raise ValueError(f"{metric}: too little history to fit ({len(grid)} points)")
    y = grid.to_numpy()
    step_days = 1.0 if daily else 1 / 24
    t = np.arange(len(y)) * step_days
    last = grid.index[-1].to_pydatetime().replace(tzinfo=UTC)
    ahead_at = [last + _DAY * (k + 1) for k in range(horizon_days)]
    ahead_t = t[-1] + np.arange(1, horizon_days + 1)
    use_hw = daily and len(y) >= MIN_SEASONS * SEASON_DAYS
    notes: list[str] = []

    # Fit error on a held-out tail, for each candidate; the best refitted on everything.
    hold = max(SEASON_DAYS if daily else 24, len(y) // 5)
    can_hold = len(y) - hold >= (MIN_SEASONS * SEASON_DAYS if use_hw else 3)
    scales = [False, True] if use_hw and bool((y > 0).all()) else [False]
    log, error, error_on, stretch = False, float("nan"), "", 1.0
    if can_hold:
        helds = {
            candidate: (
                _fit_hw(y[:-hold], hold, confidence, seed, [], candidate)
                if use_hw
                else _fit_line(t[:-hold], y[:-hold], t[-hold:], confidence)
            )
            for candidate in scales
        }
        errors = {c: _mape(y[-hold:], h.mean) for c, h in helds.items()}
        log = min(errors, key=lambda c: errors[c])
        error = errors[log]
        error_on = f"last {hold} {'days' if daily else 'hours'}, held out"
        stretch = _stretch(y[-hold:], helds[log], confidence)
    if use_hw:
        fit = _fit_hw(y, horizon_days, confidence, seed, notes, log)
    else:
        fit = _fit_line(t, y, ahead_t, confidence)
        if not daily:
            notes.append(
                f"{len(y)} hours of history: a straight line, no weekly season "
                f"(Holt-Winters needs {MIN_SEASONS * SEASON_DAYS} days)"
            )
    if not can_hold:
        error, error_on = _mape(y, fit.fitted), "fitted history (too short to hold any out)"
    lower = fit.mean - stretch * np.maximum(fit.mean - fit.lower, 0)
    upper = fit.mean + stretch * np.maximum(fit.upper - fit.mean, 0)
    if (y >= 0).all():
        lower = np.maximum(lower, 0)  # counts, bytes and rates are never negative
    return Forecast(
        metric=metric,
        method="holt-winters" if use_hw else "linear",
        history_at=[d.to_pydatetime().replace(tzinfo=UTC) for d in grid.index],
        history=y,
        at=ahead_at,
        mean=fit.mean,
        lower=lower,
        upper=upper,
        confidence=confidence,
        error_pct=error,
        error_on=error_on,
        growth_per_day=fit.slope_per_day,
        level=fit.level,
        scale="log" if log else "linear",
        notes=notes,
    )


#: Sample fields forecast for a plan; a field never sampled (all zero) is left out.
METRICS = ("memories", "rss_bytes", "disk_bytes", "rps", "cpu_percent")


def forecast_samples(
    samples: Sequence[Sample], days: int, *, confidence: float = 0.9
) -> dict[str, Forecast]:
    """Forecast every metric of :data:`METRICS` ``days`` days ahead.

    Raises:
        ValueError: too few samples to fit.
    """
    if len(samples) < 3:
        raise ValueError(f"{len(samples)} samples in the history: at least 3 are needed")
    at = [s.at for s in samples]
    out: dict[str, Forecast] = {}
    for name in METRICS:
        values = [float(getattr(s, name)) for s in samples]
        if name == "memories" or any(values):
            out[name] = fit_forecast(name, at, values, days, confidence=confidence)
    return out
