"""The Python `openai` SDK against the edge's /v1, the same checks as openai_node.mjs: a whole
answer and a stream (usage read by the SDK), a stream closed after its first chunk, and each
error as the SDK's own exception. Argument: JSON settings {base, token, limited_token, burst}.
Prints one line per check; exits 1 on the first failure.
"""
import json
import sys

import openai
from openai import OpenAI

MODEL = "bigscience/bloom-560m"
MESSAGES = [{"role": "user", "content": "hello there"}]


def check(condition, what, detail=None):
    if not condition:
        print(f"FAIL {what}: {detail!r}")
        sys.exit(1)
    print(f"ok {what}")


def refused(what, call, error_class, status):
    try:
        call()
    except openai.APIStatusError as error:
        check(isinstance(error, error_class) and error.status_code == status, what,
              (type(error).__name__, error.status_code, str(error)))
        return error
    check(False, what, "no error")


def main() -> None:
    settings = json.loads(sys.argv[1])
    client = lambda key: OpenAI(base_url=f"{settings['base']}/v1", api_key=key,
                                max_retries=0, timeout=30)
    sdk = client(settings["token"])

    whole = sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    check(whole.choices[0].message.content.strip(), "whole answer", whole)
    check(whole.usage is not None and isinstance(whole.usage.total_tokens, int),
          "usage read by the SDK", whole.usage)

    text, usage = "", None
    for chunk in sdk.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,
                                             stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    check(text.strip(), "streamed answer", text)
    check(usage is not None and isinstance(usage.total_tokens, int), "streamed usage", usage)

    stream = sdk.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    first = next(iter(stream))
    stream.close()
    check(first.choices is not None, "stream closed after its first chunk", first)

    refused("bad key: AuthenticationError",
            lambda: client("not-a-token").chat.completions.create(model=MODEL, messages=MESSAGES),
            openai.AuthenticationError, 401)
    bad = refused("bad request: BadRequestError",
                  lambda: sdk.chat.completions.create(model=MODEL, messages=MESSAGES,
                                                      temperature=7),
                  openai.BadRequestError, 400)
    check(bad.body.get("param") == "temperature", "the error names its param", bad.body)
    refused("unknown model: NotFoundError",
            lambda: sdk.chat.completions.create(model="gpt-5", messages=MESSAGES),
            openai.NotFoundError, 404)

    limited = client(settings["limited_token"])
    for _ in range(settings["burst"]):
        limited.chat.completions.create(model=MODEL, messages=MESSAGES)
    limit = refused("rate limit: RateLimitError",
                    lambda: limited.chat.completions.create(model=MODEL, messages=MESSAGES),
                    openai.RateLimitError, 429)
    check(limit.response.headers.get("x-ratelimit-remaining-requests") == "0",
          "x-ratelimit-remaining-requests", dict(limit.response.headers))


if __name__ == "__main__":
    main()
