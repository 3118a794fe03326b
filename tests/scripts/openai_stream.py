"""Streams one chat through the edge's OpenAI-compatible API with the official `openai` SDK
(the JWT is the API key) and prints what arrived as JSON: the text and the chunk count.

usage: openai_stream.py BASE_URL TOKEN MESSAGE
"""
import json
import sys

from openai import OpenAI


def main() -> None:
    base_url, token, message = sys.argv[1:4]
    client = OpenAI(base_url=base_url, api_key=token, max_retries=0, timeout=60)
    models = [m.id for m in client.models.list()]
    stream = client.chat.completions.create(
        model=models[0],
        messages=[{"role": "user", "content": message}],
        stream=True,
    )
    text, chunks, finish = "", 0, None
    for chunk in stream:
        chunks += 1
        choice = chunk.choices[0] if chunk.choices else None
        if choice and choice.delta.content:
            text += choice.delta.content
        if choice and choice.finish_reason:
            finish = choice.finish_reason
    print(json.dumps({"model": models[0], "text": text, "chunks": chunks, "finish_reason": finish}))


if __name__ == "__main__":
    main()
