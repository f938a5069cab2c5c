"""MVTec AD (Bergmann et al., 2019): its categories, which are textures and which are objects (a fact of the dataset,
used by the registry, the synthetic generator and the texture/object averages of Tables 1–2), and its archive.
Kept free of any import so that validating params stays cheap and depends on nothing else."""

MVTEC_TEXTURES: tuple[str, ...] = ("carpet", "grid", "leather", "tile", "wood")
MVTEC_OBJECTS: tuple[str, ...] = (
    "bottle",
    "cable",
    "capsule",
    "hazelnut",
    "metal_nut",
    "pill",
    "screw",
    "toothbrush",
    "transistor",
    "zipper",
)
MVTEC_CATEGORIES: tuple[str, ...] = MVTEC_TEXTURES + MVTEC_OBJECTS

# The official archive. The link changes every few months (the one before this answered 404 from November 2025);
# its identity is the SHA-256. The current URL is the one MVTec's page and anomalib's downloader use.
MIRRORS: tuple[str, ...] = (
    "https://www.mydrive.ch/shares/150996/b52ecdcbf521176e9db9c731f2304b27/download/420938113-1629960298/"
    "mvtec_anomaly_detection.tar.xz",
)
FILENAME = "mvtec_anomaly_detection.tar.xz"
SIZE = 5_264_982_680
SHA256 = "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d"
PAGE = "https://www.mvtec.com/company/research/datasets/mvtec-ad/downloads"
CITATION = (
    "Bergmann, Fauser, Sattlegger, Steger: MVTec AD - a comprehensive real-world dataset for unsupervised anomaly "
    "detection, CVPR 2019 (and IJCV 129(4), 2021)"
)
LICENCE = "CC BY-NC-SA 4.0"
