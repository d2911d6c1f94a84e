"""Root conftest: loads the alignment plugin for every pytest session started in this checkout.

Without ``--input`` (or ``--demo``) the plugin is inert and ``pytest`` runs the project's own tests.
"""

pytest_plugins = ["plugins.alignment_plugin"]
