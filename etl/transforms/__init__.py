"""Pure transforms: Column -> Column functions (`functions`), DataFrame -> DataFrame transforms
(`cleaning`, and one module per domain). None of them reads config, creates a session or does
I/O; parameterised transforms return ``Callable[[DataFrame], DataFrame]`` for ``df.transform``."""
