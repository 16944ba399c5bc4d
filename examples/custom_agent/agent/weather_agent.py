"""A custom-code agent: it decides the steps itself instead of leaving them to the model.

It fetches the forecast with its declared function, then asks its model API to phrase the
answer. Every call goes through the host (allow-list, end-user identity, lineage)."""

from typing import Any

from agentform_runtime.workload.sdk import AgentContext


def run(inputs: Any, ctx: AgentContext) -> str:
    city = inputs.get("city", "") if isinstance(inputs, dict) else str(inputs)
    forecast = ctx.functions.get_weather(city=city)
    completion = ctx.model.chat(
        [
            {"role": "system", "content": "Turn a forecast into one friendly sentence."},
            {"role": "user", "content": f"Forecast: {forecast}"},
        ]
    )
    return str(completion["choices"][0]["message"]["content"])
