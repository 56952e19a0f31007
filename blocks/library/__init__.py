"""The built-in block library. Each module listed here is scanned for Block objects."""

BUILTIN_MODULES = (
    "blocks.library.demo",
    "blocks.library.data_access",
    "blocks.library.ocean",
    "blocks.library.transform",
    "blocks.library.analytics",
    "blocks.library.heatwaves",
    "blocks.library.ml",
    "blocks.library.drift",
    "blocks.library.plots",
    "blocks.library.maps",
    "blocks.library.deliver",
    "blocks.library.utility",
)
