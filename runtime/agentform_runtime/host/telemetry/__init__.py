"""OpenTelemetry: every hop the host records, exported as a GenAI span over OTLP/HTTP."""
