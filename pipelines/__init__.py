"""The wiring a user edits (runner scripts calling the library's pipeline factories).

Not part of the installed package: `kerasvae` never imports it. The pipelines themselves,
and the bundled configs, are in the library (`kerasvae.pipeline`, `kerasvae.kfp_pipeline`,
`kerasvae/configs/`).
"""
