"""The "DAGnostics Feedback" review UI: a Flask-AppBuilder view served by the FAB provider under ``/pluginsv2``.

Imported only by the api-server (through :mod:`dagnostics_provider.plugins.dagnostics_plugin`, lazily), never by
task processes: Flask-AppBuilder alone costs about half a second to import.
"""
