"""Deployment of fine-tuned model versions to Ollama: bundle, upload, create, verify, promote and roll back.

The modules are imported by the operator and the CLI when they run; nothing here loads torch at import time, so
the analyzer can ask :mod:`.serving` which model is deployed without the training stack.
"""
