"""Failure analysis: log parsing, root-cause extraction, heuristic and LLM analyzers."""
