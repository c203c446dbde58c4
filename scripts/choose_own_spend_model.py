"""How `accord.scoring.ltv.fallback` chose a lone channel's own spend model, re-run.

On CDNOW's training customers only (the test cohort, ``customer_id % 5 == 0``, is never read
for scoring), three validation folds (``customer_id % 5`` = 1, 2, 3): for the customers one
channel alone holds, each channel's own estimate scaled by the group-sum factor fitted on the
other training customers, compared with the merged-log baseline's kind of model fitted on the
channel alone. Prints decile MAPE, normalised Gini and Spearman per fold and exponent.

    .venv/bin/python scripts/choose_own_spend_model.py [path/to/CDNOW_master.txt]
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from accord.data import cdnow
from accord.data.purchase_features import purchase_features
from accord.data.shared import find_shared, missing_message
from accord.scoring.ltv.baseline import fit_btyd_baseline
from accord.scoring.ltv.fallback import fit_own_spend_model, own_summary
from accord.scoring.ltv.metrics import ltv_metrics

FOLDS = (1, 2, 3)
EXPONENTS = (1.0, 0.9, 0.8, 0.7, 0.6)


def main() -> None:
    path = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else find_shared("data", "cdnow", "CDNOW_master.txt")
    )
    if path is None:
        raise SystemExit(missing_message("CDNOW_master.txt", "data", "cdnow", "CDNOW_master.txt"))
    scenario = cdnow.build_scenario(cdnow.load_cdnow(path))
    ids = scenario.customer_ids
    labels = scenario.label.to_numpy(dtype=float)
    test = cdnow.in_test_cohort(ids)
    held = np.stack(
        [np.isin(ids, scenario.features[c].index.to_numpy(np.int64)) for c in cdnow.CHANNELS], 1
    )
    lone = held.sum(axis=1) == 1
    product, baseline = {}, {}
    for c in cdnow.CHANNELS:
        own = scenario.transactions[scenario.transactions["channel"] == c]
        summary = own_summary(purchase_features(own, cdnow.CALIBRATION_END, key="customer_id"))
        model = replace(fit_own_spend_model(summary), exponent=1.0)
        product[c] = model.estimate(summary).reindex(scenario.label.index).to_numpy(dtype=float)
        fitted = fit_btyd_baseline(own).predicted
        baseline[c] = fitted.reindex(scenario.label.index).to_numpy(dtype=float)
    candidates = [("baseline kind", baseline, 1.0)] + [("own", product, g) for g in EXPONENTS]
    for name, estimates, exponent in candidates:
        rows_out = []
        for fold in FOLDS:
            validation = (ids % 5) == fold
            fit_rows = np.flatnonzero(~test & ~validation)
            predicted = np.full(ids.size, np.nan)
            for j, c in enumerate(cdnow.CHANNELS):
                e = estimates[c] ** exponent
                alone = lone & held[:, j] & np.isfinite(e)
                fit = fit_rows[alone[fit_rows]]
                predicted[alone] = e[alone] * labels[fit].sum() / e[fit].sum()
            rows = np.flatnonzero(validation & lone)
            rows_out.append(ltv_metrics(predicted[rows], labels[rows]))
        mape = [m.decile_mape_pct for m in rows_out]
        print(
            f"{name:>13} ^{exponent:.1f}  decile MAPE {' / '.join(f'{v:5.2f}' for v in mape)}"
            f" (mean {np.mean(mape):5.2f})  Gini {' / '.join(f'{m.gini:.3f}' for m in rows_out)}"
            f"  Spearman {' / '.join(f'{m.spearman:.3f}' for m in rows_out)}"
        )


if __name__ == "__main__":
    main()
