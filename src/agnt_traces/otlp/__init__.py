"""OpenTelemetry (OTLP/HTTP) ingest: LLM spans from any instrumentation become traces (``source: "otlp"``).

decode.py     request bodies (protobuf / JSON, gzip) → plain spans, every size bounded
messages.py   the message shapes instrumentations write → the trace's messages
dialects.py   which attributes each instrumentation writes, read into one call
mapping.py    one LLM span → one trace
ingest.py     one export request → traces stored in one transaction, with counts
"""
