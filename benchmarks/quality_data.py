"""The data of the drift-quality benchmark (:mod:`benchmarks.drift_quality`): settings, splits and injected shifts.

Every setting makes one (reference, current) pair of pandas DataFrames per split from a seeded generator: the
synthetic kinds draw both sides afresh from their distributions (no drift) or draw the current side from the shifted
distribution; the real tables (bundled in statsmodels and scikit-learn, exported to Parquet by
:func:`ensure_real_tables`) are split at random into disjoint reference and current rows, and a shift scales one
column of the current rows.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REAL_DIR = HERE / "data" / "quality"

Pair = tuple[pd.DataFrame, pd.DataFrame]
Maker = Callable[[np.random.Generator], Pair]


@dataclass(frozen=True)
class Setting:
    kind: str
    n_ref: int
    n_cur: int
    shift: str  # "none" for a no-drift setting
    n_splits: int
    make: Maker

    @property
    def drifted(self) -> bool:
        return self.shift != "none"


# --- building blocks (unit-tested) ---------------------------------------------------------------------------------


def disjoint_split(rng: np.random.Generator, n_rows: int, n_ref: int, n_cur: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of a random reference and a disjoint random current sample of a table of ``n_rows`` rows."""
    if n_ref + n_cur > n_rows:
        raise ValueError(f"{n_ref} + {n_cur} rows do not fit in {n_rows}")
    order = rng.permutation(n_rows)
    return np.sort(order[:n_ref]), np.sort(order[n_ref : n_ref + n_cur])


ZIPS = np.array([f"{10_000 + 157 * i:05d}" for i in range(600)])


def zip_probabilities(shape: str) -> np.ndarray:
    """Uniform over the 600 zips, or Zipf(1.1) (p_k ∝ k^-1.1, truncated at 600)."""
    if shape == "uniform":
        return np.full(len(ZIPS), 1 / len(ZIPS))
    weights = np.arange(1, len(ZIPS) + 1, dtype=np.float64) ** -1.1
    probabilities: np.ndarray = weights / weights.sum()
    return probabilities


def move_mass(
    rng: np.random.Generator, values: np.ndarray, share: float, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Replace exactly ``round(share * n)`` randomly chosen values with values drawn uniformly from ``targets``;
    returns the new values and the positions replaced."""
    out = values.copy()
    moved = rng.choice(len(values), size=round(share * len(values)), replace=False)
    out[moved] = rng.choice(targets, size=len(moved))
    return out, moved


def outside_range(rng: np.random.Generator, values: np.ndarray, share: float, high: float) -> np.ndarray:
    """Exactly ``round(share * n)`` values moved above ``high`` (the reference maximum)."""
    out = values.astype(np.float64, copy=True)
    moved = rng.choice(len(values), size=round(share * len(values)), replace=False)
    out[moved] = high + 1 + rng.exponential(10, size=len(moved))
    return out


def unseen_categories(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    """Exactly ``round(share * n)`` values replaced by categories the reference never had (``new0`` … ``new4``)."""
    out = values.astype(object, copy=True)
    moved = rng.choice(len(values), size=round(share * len(values)), replace=False)
    out[moved] = rng.choice([f"new{i}" for i in range(5)], size=len(moved))
    return out


def with_missing(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    """Exactly ``round(share * n)`` values made missing (NaN)."""
    out = values.astype(np.float64, copy=True)
    out[rng.choice(len(values), size=round(share * len(values)), replace=False)] = np.nan
    return out


def zero_inflated(rng: np.random.Generator, n: int, zero_share: float) -> np.ndarray:
    """Counts: zero with probability ``zero_share``, else a geometric tail 1, 2, 3, … (p = 0.4)."""
    return np.where(rng.random(n) < zero_share, 0, rng.geometric(0.4, size=n)).astype(np.int64)


def correlated(rng: np.random.Generator, n: int, rho: float) -> pd.DataFrame:
    """Two standard normals with correlation ``rho`` (marginals N(0, 1) whatever rho) and a third, independent."""
    x1, z, x3 = rng.standard_normal((3, n))
    return pd.DataFrame({"x1": x1, "x2": rho * x1 + np.sqrt(1 - rho**2) * z, "x3": x3})


# --- the synthetic kinds ---------------------------------------------------------------------------------------------


def _high_cardinality(shape: str, n_ref: int, n_cur: int, shifted: bool) -> Maker:
    probs = zip_probabilities(shape)

    def make(rng: np.random.Generator) -> Pair:
        ref = ZIPS[rng.choice(len(ZIPS), size=n_ref, p=probs)]
        cur = ZIPS[rng.choice(len(ZIPS), size=n_cur, p=probs)]
        if shifted:
            cur, _ = move_mass(rng, cur, 0.2, rng.choice(ZIPS, size=30, replace=False))
        return pd.DataFrame({"zip": ref}), pd.DataFrame({"zip": cur})

    return make


PREDICTION = {"base": [0.5, 0.3, 0.2], "shifted": [0.4, 0.4, 0.2]}


def large_table(rng: np.random.Generator, n: int, shift: str = "none") -> pd.DataFrame:
    """A 3-class prediction, a binary flag, a Poisson(4) count and a normal amount; ``shift`` changes one of them."""
    prediction = PREDICTION["shifted" if shift == "prediction" else "base"]
    rate = 0.35 if shift == "flag" else 0.30
    return pd.DataFrame(
        {
            "prediction": rng.choice(np.array(["a", "b", "c"]), size=n, p=prediction),
            "flag": np.where(rng.random(n) < rate, "1", "0"),
            "visits": rng.poisson(4 * 1.2 if shift == "visits" else 4, size=n).astype(np.int64),
            "amount": rng.normal(100, 15 * 1.5 if shift == "amount" else 15, size=n),
        }
    )


LARGE_SHIFTS = {
    "prediction": "prediction 0.5/0.3/0.2 → 0.4/0.4/0.2",
    "flag": "binary rate 0.30 → 0.35",
    "visits": "Poisson(4) mean +20 %",
    "amount": "normal spread ×1.5",
}


def _large(n_ref: int, n_cur: int, shift: str) -> Maker:
    def make(rng: np.random.Generator) -> Pair:
        return large_table(rng, n_ref), large_table(rng, n_cur, shift)

    return make


SEGMENTS = np.array([f"s{i}" for i in range(8)])
SEGMENT_P = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.06, 0.05, 0.04])
TINY_SHIFTS = {
    "range": "90 % of a numeric outside the reference range",
    "unseen": "50 % unseen categories",
    "missing": "missing share 0 → 60 %",
}


def tiny_table(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": rng.normal(50, 10, size=n),
            "segment": rng.choice(SEGMENTS, size=n, p=SEGMENT_P),
            "score": rng.standard_normal(n),
        }
    )


def _tiny(n_ref: int, n_cur: int, shift: str) -> Maker:
    def make(rng: np.random.Generator) -> Pair:
        ref, cur = tiny_table(rng, n_ref), tiny_table(rng, n_cur)
        if shift == "range":
            cur["amount"] = outside_range(rng, cur["amount"].to_numpy(), 0.9, float(ref["amount"].max()))
        elif shift == "unseen":
            cur["segment"] = unseen_categories(rng, cur["segment"].to_numpy(), 0.5)
        elif shift == "missing":
            cur["score"] = with_missing(rng, cur["score"].to_numpy(), 0.6)
        return ref, cur

    return make


def _zeros(n_ref: int, n_cur: int, shifted: bool) -> Maker:
    def make(rng: np.random.Generator) -> Pair:
        ref = pd.DataFrame({"claims": zero_inflated(rng, n_ref, 0.95), "amount": rng.normal(100, 15, size=n_ref)})
        cur = pd.DataFrame(
            {"claims": zero_inflated(rng, n_cur, 0.90 if shifted else 0.95), "amount": rng.normal(100, 15, size=n_cur)}
        )
        return ref, cur

    return make


def _multivariate(n_ref: int, n_cur: int, shifted: bool) -> Maker:
    def make(rng: np.random.Generator) -> Pair:
        return correlated(rng, n_ref, 0.8), correlated(rng, n_cur, -0.8 if shifted else 0.8)

    return make


# --- the real tables -------------------------------------------------------------------------------------------------

# name: (the package that bundles it, code that loads it as the DataFrame `df`)
REAL_TABLES: dict[str, tuple[str, str]] = {
    "randhie": ("statsmodels", "import statsmodels.api as sm; df = sm.datasets.randhie.load_pandas().data"),
    "fair": ("statsmodels", "import statsmodels.api as sm; df = sm.datasets.fair.load_pandas().data"),
    "breast_cancer": (
        "scikit-learn",
        "from sklearn.datasets import load_breast_cancer; "
        "df = load_breast_cancer(as_frame=True).frame.iloc[:, :10]",  # the ten 'mean …' measurements
    ),
    "diabetes": (
        "scikit-learn",
        "from sklearn.datasets import load_diabetes; df = load_diabetes(as_frame=True, scaled=False).frame",
    ),
}

EXPORT_SCRIPT = r"""
import json, sys
from importlib.metadata import version
out, tables = sys.argv[1], json.loads(sys.argv[2])
sources = {}
for name, (package, code) in tables.items():
    scope = {}
    exec(code, scope)
    scope["df"].reset_index(drop=True).to_parquet(f"{out}/{name}.parquet", index=False)
    sources[name] = f"{package} {version(package)}"
print(json.dumps(sources))
"""


def ensure_real_tables(python: str | None, directory: Path = REAL_DIR) -> dict[str, str]:
    """The real tables as Parquet in ``directory`` (exported once, by ``python`` — an interpreter that has statsmodels
    and scikit-learn, e.g. the Evidently environment's); returns table → "package version", or {} when neither the
    files nor such an interpreter are there."""
    sources_file = directory / "sources.json"
    if sources_file.exists() and all((directory / f"{name}.parquet").exists() for name in REAL_TABLES):
        sources: dict[str, str] = json.loads(sources_file.read_text())
        return sources
    if python is None:
        return {}
    directory.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(
        [python, "-c", EXPORT_SCRIPT, str(directory), json.dumps(REAL_TABLES)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        print(f"could not export the real tables: {completed.stderr[-1500:]}")
        return {}
    sources = json.loads(completed.stdout.strip().splitlines()[-1])
    sources_file.write_text(json.dumps(sources, indent=1))
    return sources


def scale_column(frame: pd.DataFrame, column: str, factor: float) -> pd.DataFrame:
    out = frame.copy()
    out[column] = out[column].astype(np.float64) * factor
    return out


def _real(table: pd.DataFrame, n_ref: int, n_cur: int, scale: tuple[str, float] | None) -> Maker:
    def make(rng: np.random.Generator) -> Pair:
        ref_rows, cur_rows = disjoint_split(rng, len(table), n_ref, n_cur)
        ref, cur = table.iloc[ref_rows].reset_index(drop=True), table.iloc[cur_rows].reset_index(drop=True)
        if scale is not None:
            cur = scale_column(cur, *scale)
        return ref, cur

    return make


# --- the settings ----------------------------------------------------------------------------------------------------


def settings(real: dict[str, pd.DataFrame], *, quick: bool = False) -> list[Setting]:
    """Every setting of the benchmark; ``real`` holds the real tables by name (missing ones are left out)."""
    calm, shifted = (3, 3) if quick else (25, 40)
    out: list[Setting] = []
    for shape in ("uniform", "Zipf(1.1)"):
        for n_cur in (300, 5_000):
            kind = f"high-cardinality, 600 zips, {shape}"
            shape_key = "uniform" if shape == "uniform" else "zipf"
            out.append(Setting(kind, 20_000, n_cur, "none", calm, _high_cardinality(shape_key, 20_000, n_cur, False)))
            out.append(
                Setting(
                    kind,
                    20_000,
                    n_cur,
                    "20 % of mass to 30 other zips",
                    shifted,
                    _high_cardinality(shape_key, 20_000, n_cur, True),
                )
            )
    for n_ref in (10_000, 50_000):
        kind = "large windows (3-class, binary, Poisson, normal)"
        out.append(Setting(kind, n_ref, 5_000, "none", calm, _large(n_ref, 5_000, "none")))
        for key, label in LARGE_SHIFTS.items():
            out.append(Setting(kind, n_ref, 5_000, label, shifted, _large(n_ref, 5_000, key)))
    kind = "tiny windows (numeric, 8-category, numeric)"
    out.append(Setting(kind, 5_000, 40, "none", calm, _tiny(5_000, 40, "none")))
    for key, label in TINY_SHIFTS.items():
        out.append(Setting(kind, 5_000, 40, label, shifted, _tiny(5_000, 40, key)))
    kind = "zero-inflated counts (95 % zeros, geometric tail) + normal"
    out.append(Setting(kind, 20_000, 5_000, "none", calm, _zeros(20_000, 5_000, False)))
    out.append(Setting(kind, 20_000, 5_000, "zero share 95 % → 90 %", shifted, _zeros(20_000, 5_000, True)))
    kind = "multivariate (x1, x2 correlated 0.8; x3 independent)"
    out.append(Setting(kind, 10_000, 5_000, "none", calm, _multivariate(10_000, 5_000, False)))
    out.append(Setting(kind, 10_000, 5_000, "correlation 0.8 → −0.8", shifted, _multivariate(10_000, 5_000, True)))
    # Real tables: (reference rows, current rows, no-drift splits, a column the shift scales ×1.2 or None).
    plan = {
        "randhie": (10_000, 5_000, 3 if quick else 50, "disea"),
        "fair": (4_000, 2_000, 3 if quick else 50, None),
        "breast_cancer": (369, 200, 3 if quick else 40, "mean radius"),
        "diabetes": (292, 150, 3 if quick else 30, None),
    }
    for name, (n_ref, n_cur, n_calm, column) in plan.items():
        if name not in real:
            continue
        table = real[name]
        kind = f"real: {name} ({table.shape[1]} columns)"
        out.append(Setting(kind, n_ref, n_cur, "none", n_calm, _real(table, n_ref, n_cur, None)))
        if column is not None:
            out.append(
                Setting(kind, n_ref, n_cur, f"'{column}' ×1.2", shifted, _real(table, n_ref, n_cur, (column, 1.2)))
            )
    return out
