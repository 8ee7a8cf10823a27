"""The seed families latbench is built around, every variant, smallest first."""

SEED_FAMILIES: dict[str, tuple[str, ...]] = {
    "fastvit": (
        "fastvit_t8",
        "fastvit_t12",
        "fastvit_s12",
        "fastvit_sa12",
        "fastvit_sa24",
        "fastvit_sa36",
        "fastvit_ma36",
    ),
    "mobilevit": ("mobilevit_xxs", "mobilevit_xs", "mobilevit_s"),
    "mobilevitv2": (
        "mobilevitv2_050",
        "mobilevitv2_075",
        "mobilevitv2_100",
        "mobilevitv2_125",
        "mobilevitv2_150",
        "mobilevitv2_175",
        "mobilevitv2_200",
    ),
    "repvit": ("repvit_m0_9", "repvit_m1_0", "repvit_m1_1", "repvit_m1_5", "repvit_m2_3"),
    "fasternet": (
        "fasternet_t0",
        "fasternet_t1",
        "fasternet_t2",
        "fasternet_s",
        "fasternet_m",
        "fasternet_l",
    ),
    "mobileone": ("mobileone_s0", "mobileone_s1", "mobileone_s2", "mobileone_s3", "mobileone_s4"),
}

SMALLEST = tuple(variants[0] for variants in SEED_FAMILIES.values())
ALL_VARIANTS = tuple(name for variants in SEED_FAMILIES.values() for name in variants)

# shell patterns that also catch variants timm adds later (e.g. fastvit_mci*)
FAMILY_PATTERNS = tuple(f"{family}_*" for family in SEED_FAMILIES)
