"""Models no maintained library ships. Each module here registers its models with
``@register_model``; the registry imports every module of this package on first use."""
