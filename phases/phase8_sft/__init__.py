"""Phase 8: supervised fine-tuning and RL: from a base model to a chat model that uses its calculator.

See README.md for the lesson.
"""
