"""The runtime SDK for custom-code agents: `def run(inputs, ctx: AgentContext) -> str | dict`.

Everything goes through the host, so the allow-list, the end user's identity and the lineage
apply exactly as for declarative agents::

    def run(inputs, ctx):
        weather = ctx.functions.get_weather(city=inputs["city"])
        reply = ctx.model.chat([{"role": "user", "content": f"Summarise: {weather}"}])
        return reply["choices"][0]["message"]["content"]
"""

from __future__ import annotations

from typing import Any

from agentform_runtime.workload.host_client import HostClient, Usage, usage_of


class ModelHandle:
    """One model API deployment: `chat(messages, tools=None, **options)` -> chat completion."""

    def __init__(self, host: HostClient, name: str, agent: AgentContext) -> None:
        self.name = name
        self._host = host
        self._agent = agent

    def chat(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        **options: Any,
    ) -> Any:
        request: dict[str, Any] = {"messages": messages, **options}
        if tools:
            request["tools"] = tools
        completion = self._host.chat(self.name, request)
        self._agent.usage += usage_of(completion)
        return completion


class _Calls:
    """Attribute access to declared deployments: `ctx.functions.get_weather(city="Paris")`."""

    def __init__(self, names: list[str], call: Any) -> None:
        self._names = names
        self._call = call

    def __getattr__(self, attribute: str) -> Any:
        name = attribute.replace("_", "-") if attribute not in self._names else attribute
        if name not in self._names:
            raise AttributeError(f"{attribute!r} is not declared; declared: {self._names}")
        return lambda *args, **kwargs: self._call(name, *args, **kwargs)

    def __getitem__(self, name: str) -> Any:
        return self.__getattr__(name)

    def __iter__(self) -> Any:
        return iter(self._names)


class AgentContext:
    """What a custom-code agent's entrypoint receives as `ctx`."""

    def __init__(
        self, host: HostClient, models: list[str], functions: list[str], agents: list[str]
    ) -> None:
        self.host = host
        self.usage = Usage()
        self.identity = host.context.identity
        self.request_id = host.context.request_id
        self.trace_id = host.context.trace_id
        self.models = {name: ModelHandle(host, name, self) for name in models}
        self.functions = _Calls(functions, lambda name, **arguments: host.function(name, arguments))
        self.agents = _Calls(agents, self._ask_agent)

    @property
    def model(self) -> ModelHandle:
        """The agent's (first) model API."""
        if not self.models:
            raise AttributeError("this agent declares no model API")
        return next(iter(self.models.values()))

    def _ask_agent(self, name: str, inputs: Any) -> dict[str, Any]:
        answer = self.host.agent(name, inputs if isinstance(inputs, dict) else {"inputs": inputs})
        usage = answer.get("usage", {})
        self.usage += Usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0))
        return answer
