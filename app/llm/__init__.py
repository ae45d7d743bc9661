"""LLM access: one client (litellm underneath) used by the grader, interviewer and evals."""

from app.llm.client import LLMClient, LLMError, LLMReply, Message

__all__ = ["LLMClient", "LLMError", "LLMReply", "Message"]
