"""The MVTec AD categories (Bergmann et al., 2019): which are textures and which are objects is a fact of the
dataset, used by the data reader, the synthetic generator and the texture/object averages of Tables 1–2.
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
