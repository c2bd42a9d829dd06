//! The stream decoder: SSE bytes or a JSON body from OpenRouter (or any OpenAI-compatible provider)
//! into typed events.
