"""Lifetime value: the CDNOW omnichannel scenario, a ZILN head, and the BG/NBD baseline.

- :mod:`accord.scoring.ziln`: the zero-inflated log-normal head (loss, expected spend, quantiles);
- :mod:`.metrics`: aggregate error, decile MAPE, normalized Gini, Spearman, the decile chart;
- :mod:`.baseline`: BG/NBD + Gamma-Gamma on the merged log (``lifetimes``);
- :mod:`.split`: the split-learning parties (bottom models per channel, top model on the sum);
- :mod:`.model`: training them into a calibrated model that any subset of parties can serve;

The scenario data lives in :mod:`accord.data.cdnow`; the experiment behind ``accord bench ltv``
(``run_ltv_experiment``) in :mod:`accord.bench.ltv_experiment`.
"""

from accord.scoring.ltv.baseline import BtydBaseline, fit_btyd_baseline, rfm_summary
from accord.scoring.ltv.metrics import (
    DecileTable,
    LtvMetrics,
    aggregate_error_pct,
    decile_chart,
    decile_mape_pct,
    decile_table,
    ltv_metrics,
    normalized_gini,
    spearman,
)
from accord.scoring.ltv.model import TrainedSplitModel, train_ltv_model
from accord.scoring.ltv.split import (
    BottomModel,
    ChannelParty,
    SplitConfig,
    TopModel,
    TopParty,
    TrainingHistory,
    node_features,
    predict_split,
    summed_embedding,
    torch_threads,
    train_split,
)
from accord.scoring.ziln import (
    ZilnParams,
    expected_spend,
    params_from_output,
    ziln_log_likelihood,
    ziln_loss,
    ziln_params,
    ziln_quantile,
)

__all__ = [
    "BottomModel",
    "BtydBaseline",
    "ChannelParty",
    "DecileTable",
    "LtvMetrics",
    "SplitConfig",
    "TopModel",
    "TopParty",
    "TrainedSplitModel",
    "TrainingHistory",
    "ZilnParams",
    "aggregate_error_pct",
    "decile_chart",
    "decile_mape_pct",
    "decile_table",
    "expected_spend",
    "fit_btyd_baseline",
    "ltv_metrics",
    "node_features",
    "normalized_gini",
    "params_from_output",
    "predict_split",
    "rfm_summary",
    "spearman",
    "summed_embedding",
    "torch_threads",
    "train_ltv_model",
    "train_split",
    "ziln_log_likelihood",
    "ziln_loss",
    "ziln_params",
    "ziln_quantile",
]
