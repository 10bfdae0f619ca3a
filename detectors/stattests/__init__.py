"""Built-in drift tests, one module each; importing this package registers them."""

from driftline.detectors.stattests import (  # noqa: F401
    anderson_darling,
    chisquare,
    cramer_von_mises,
    energy,
    fisher_exact,
    g_test,
    hellinger,
    jensen_shannon,
    kl_divergence,
    ks,
    mann_whitney,
    proportions_z,
    psi,
    total_variation,
    wasserstein,
)
