"""The learning loop: reviewed feedback → training dataset → fine-tuned model → evaluation → deployment.

Each step is a plain module the operators, the CLI and tests call directly; heavy dependencies (torch,
transformers) are imported only inside the steps that need them, so building a dataset does not need them.
"""
