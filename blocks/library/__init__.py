"""The built-in block library. Each module listed here is scanned for Block objects."""

BUILTIN_MODULES = (
    "blocks.library.demo",
    "blocks.library.ocean",
    "blocks.library.plots",
    "blocks.library.maps",
    "blocks.library.utility",
)
