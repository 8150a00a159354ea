"""The LLM client's parts: one request builder and one answer validator for two users.

The online path (``client.LLM``, one chat call per question) and the batch path (``batch``:
files for OpenAI's Batch API or ``vllm run-batch``) build the same request bodies and take
answers back through the same validation and cache.
"""
