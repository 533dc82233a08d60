"""The official openai SDK against a gateway started with `switchyard serve --demo`.

Usage: python openai_sdk.py BASE_URL   (exits non-zero on the first failed check)
"""
import json
import sys

import openai

base = sys.argv[1].rstrip("/") + "/v1"
client = openai.OpenAI(base_url=base, api_key="unused-in-demo")

# Embeddings: a string, then a list.
one = client.embeddings.create(model="embed", input="hello switchyard")
assert len(one.data) == 1 and len(one.data[0].embedding) > 0, one
many = client.embeddings.create(model="embed", input=["a", "b", "c"])
assert [d.index for d in many.data] == [0, 1, 2], many
assert one.data[0].embedding == client.embeddings.create(model="embed", input="hello switchyard").data[0].embedding

# A chat request with a tool, whole: the call and its arguments arrive intact.
tools = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}]
messages = [{"role": "user", "content": "what is the weather in Lyon"}]
whole = client.chat.completions.create(model="auto", messages=messages, tools=tools)
call = whole.choices[0].message.tool_calls[0]
assert whole.choices[0].finish_reason == "tool_calls", whole
assert call.function.name == "get_weather", call
arguments = json.loads(call.function.arguments)
assert arguments["query"], arguments

# The same, streamed: the pieces add up to the same arguments.
pieces, name, finish = "", None, None
for chunk in client.chat.completions.create(model="auto", messages=messages, tools=tools, stream=True):
    if not chunk.choices:
        continue
    choice = chunk.choices[0]
    finish = choice.finish_reason or finish
    for delta in choice.delta.tool_calls or []:
        name = delta.function.name or name
        pieces += delta.function.arguments or ""
assert name == "get_weather" and finish == "tool_calls", (name, finish)
assert json.loads(pieces) == arguments, (pieces, arguments)

# A tool's result is answered with text.
followup = messages + [
    {"role": "assistant", "content": None, "tool_calls": [{"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": call.function.arguments}}]},
    {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
]
text = client.chat.completions.create(model="auto", messages=followup, tools=tools)
assert text.choices[0].message.content and text.choices[0].finish_reason == "stop", text

# A bad request is the SDK's BadRequestError.
try:
    client.embeddings.create(model="auto", input="chat route")
    raise AssertionError("a chat route answered embeddings")
except openai.BadRequestError as error:
    assert "kind: embedding" in str(error), error

print("openai SDK: every check passed")
