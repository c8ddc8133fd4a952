"""The DSPy-shaped Python front end: signatures, modules and `build`."""
