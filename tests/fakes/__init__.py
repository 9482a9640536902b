"""Fake LLM servers for tests: real HTTP servers on 127.0.0.1 that follow the Ollama and OpenAI APIs strictly."""
