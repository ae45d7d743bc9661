"""Language models: one :class:`ChatModel` protocol used by the interviewer, the LLM grader and
the evals; litellm behind it for real providers, a deterministic mock for everything else."""

from app.config import Settings
from app.errors import LLMError
from app.llm.base import ChatModel, ChatReply, ChatRequest, Message, Usage
from app.llm.litellm_model import LiteLLMChatModel
from app.llm.mock import MockChatModel, is_mock
from app.llm.policy import CallPolicy


def make_chat_model(settings: Settings, model: str, api_key: str | None = None) -> ChatModel:
    """The mock for ``mock`` or ``mock/<anything>``, else litellm with the settings' policy."""
    if is_mock(model):
        return MockChatModel(model)
    return LiteLLMChatModel.from_settings(settings, model, api_key)


__all__ = [
    "CallPolicy",
    "ChatModel",
    "ChatReply",
    "ChatRequest",
    "LLMError",
    "LiteLLMChatModel",
    "Message",
    "MockChatModel",
    "Usage",
    "make_chat_model",
]
