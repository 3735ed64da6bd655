"""LM Training Control Panel: training flows, LangGraph pipeline and stage logic."""
