"""DAGnostics' own database: models, engine resolution and migrations."""
