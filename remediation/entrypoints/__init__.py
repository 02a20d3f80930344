"""Entry points: the ``remediation`` command line (``cli``), with its ``demo``, ``doctor`` and
``status``/``report`` rendering, and the Azure Functions triggers (``functions``) that
``function_app.py`` registers. Each parses its input, calls the core and maps the outcome."""
