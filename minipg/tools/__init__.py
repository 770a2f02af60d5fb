"""Layer 7, tools: what a user runs around the library.

    cli      `minipg train | eval | plot` (also `python -m minipg ...`)
    plot     learning curves from run directories, seeds averaged
    render   one episode of a policy as a GIF or an MP4

May import every other layer.
"""
