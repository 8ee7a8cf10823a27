"""Models no maintained library ships. Each module here registers its models with
``@register_model``; ``MODULE_OF`` names each model's module so that listing and resolving names
imports none of them (they import torch), only the one a build needs (a test checks the table
against what the modules register)."""

MODULE_OF: dict[str, str] = {
    "parcnet_s": "parc_models",
    "parcnet_xs": "parc_models",
    "parc_convnext_xt": "parc_models",
}
