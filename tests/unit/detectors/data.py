"""Seeded tables and window profiles shared by the detector tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from driftline.detectors import Profile, window_profile


def frame(
    rng: np.random.Generator, n: int, *, shift: float = 0.0, plan_p: tuple[float, ...] = (0.5, 0.3, 0.2)
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3 + shift, 0.5, n),
            "age": rng.normal(40, 10, n),
            "plan": rng.choice(["basic", "plus", "pro"], n, p=plan_p),
        }
    )


def window(reference: Profile, data: pd.DataFrame) -> Profile:
    """The window profile of ``data`` against ``reference``, fed in record batches of 10,000 rows."""
    return window_profile(
        reference, iter(pa.Table.from_pandas(data, preserve_index=False).to_batches(max_chunksize=10_000))
    )
