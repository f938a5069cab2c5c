"""FRAD: unsupervised industrial anomaly detection based on feature reconstruction (Lu, Li, Wang, Yang).

Library only: knows nothing of DVC or ``pipeline/``. Modules mirror the paper:
``data`` (MVTec AD layout), ``synthetic`` (offline data), ``backbone`` + ``features`` (§1.1, eq. 1–3),
``recombine`` (§1.2), ``model`` (§1, §1.3, eq. 4–6), ``train`` (§1.4, eq. 7–11), ``score`` (§1.5),
``metrics`` (image/pixel AUROC, AU-PRO), ``download`` (official archive).
"""

__version__ = "0.1.0"
