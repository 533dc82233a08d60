"""The official anthropic SDK against a gateway started with `switchyard serve --demo`.

Usage: python anthropic_sdk.py BASE_URL   (exits non-zero on the first failed check)
"""
import sys

import anthropic

client = anthropic.Anthropic(base_url=sys.argv[1].rstrip("/"), api_key="unused-in-demo")

# A plain message.
message = client.messages.create(
    model="auto", max_tokens=256, system="You are terse.",
    messages=[{"role": "user", "content": "Hello, Switchyard!"}],
)
assert message.type == "message" and message.role == "assistant", message
assert message.content[0].type == "text" and message.content[0].text, message
assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0, message

# Streamed: the text collected from the events is the whole answer.
with client.messages.stream(model="auto", max_tokens=256, messages=[{"role": "user", "content": "Stream to me"}]) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
assert text and final.content[0].text == text, (text, final)
assert final.stop_reason == "end_turn", final

# A tool the fake answers with a tool_use block, then the tool's result answered with text.
tools = [{
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}]
asked = [{"role": "user", "content": "What is the weather in Lyon?"}]
called = client.messages.create(model="auto", max_tokens=256, tools=tools, messages=asked)
use = next(block for block in called.content if block.type == "tool_use")
assert called.stop_reason == "tool_use" and use.name == "get_weather" and use.input.get("query"), called
answered = client.messages.create(
    model="auto", max_tokens=256, tools=tools,
    messages=asked + [
        {"role": "assistant", "content": called.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}]},
    ],
)
assert answered.content[0].type == "text" and answered.stop_reason == "end_turn", answered

# A streamed tool call arrives as one tool_use block with its input.
with client.messages.stream(model="auto", max_tokens=256, tools=tools, messages=asked) as stream:
    streamed = stream.get_final_message()
assert streamed.stop_reason == "tool_use" and streamed.content[-1].input == use.input, streamed

# Without max_tokens (sent raw: the SDK itself insists on it) the gateway answers 400, raised as BadRequestError.
try:
    client.post("/v1/messages", body={"model": "auto", "messages": [{"role": "user", "content": "x"}]}, cast_to=anthropic.types.Message)
    raise AssertionError("a request without max_tokens was answered")
except anthropic.BadRequestError as error:
    assert "max_tokens" in str(error), error

# count_tokens answers from the gateway's estimate.
count = client.messages.count_tokens(model="auto", messages=[{"role": "user", "content": "How many tokens is this?"}])
assert count.input_tokens > 0, count

print("anthropic SDK: every check passed")
