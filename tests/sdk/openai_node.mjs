// The npm `openai` package (v7) against the edge's /v1, as an application would use it: a
// whole answer and a stream (usage read by the SDK), a stream aborted after its first chunk,
// and each error the SDK turns into its own class. Argument: JSON settings {base, token,
// limited_token, burst}. Prints one line per check; exits 1 on the first failure.

import OpenAI from "openai";

const settings = JSON.parse(process.argv[2]);
const model = "bigscience/bloom-560m";
const messages = [{ role: "user", content: "hello there" }];
const client = (apiKey) =>
  new OpenAI({ baseURL: `${settings.base}/v1`, apiKey, maxRetries: 0, timeout: 30_000 });

function check(condition, what, detail) {
  if (!condition) {
    console.log(`FAIL ${what}: ${JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

async function refused(what, call, errorClass, status) {
  try {
    await call();
  } catch (error) {
    check(error instanceof errorClass && error.status === status, what, {
      name: error?.constructor?.name,
      status: error?.status,
      message: error?.message,
    });
    return error;
  }
  check(false, what, "no error");
}

const sdk = client(settings.token);

const whole = await sdk.chat.completions.create({ model, messages });
check(whole.choices[0].message.content.trim().length > 0, "whole answer", whole);
check(
  whole.usage && Number.isInteger(whole.usage.total_tokens),
  "usage read by the SDK",
  whole.usage,
);

const stream = await sdk.chat.completions.create({
  model,
  messages,
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let usage = null;
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
check(text.trim().length > 0, "streamed answer", text);
check(usage && Number.isInteger(usage.total_tokens), "streamed usage", usage);

const aborted = await sdk.chat.completions.create({ model, messages, stream: true });
let chunks = 0;
for await (const _ of aborted) {
  chunks += 1;
  aborted.controller.abort();
  break;
}
check(chunks === 1, "stream aborted after its first chunk", chunks);

await refused(
  "bad key: AuthenticationError",
  () => client("not-a-token").chat.completions.create({ model, messages }),
  OpenAI.AuthenticationError,
  401,
);
const bad = await refused(
  "bad request: BadRequestError",
  () => sdk.chat.completions.create({ model, messages, temperature: 7 }),
  OpenAI.BadRequestError,
  400,
);
check(bad.param === "temperature", "the error names its param", bad.param);
await refused(
  "unknown model: NotFoundError",
  () => sdk.chat.completions.create({ model: "gpt-5", messages }),
  OpenAI.NotFoundError,
  404,
);

const limited = client(settings.limited_token);
for (let i = 0; i < settings.burst; i++) {
  await limited.chat.completions.create({ model, messages });
}
const limit = await refused(
  "rate limit: RateLimitError",
  () => limited.chat.completions.create({ model, messages }),
  OpenAI.RateLimitError,
  429,
);
check(
  limit.headers.get("x-ratelimit-remaining-requests") === "0",
  "x-ratelimit-remaining-requests",
  Object.fromEntries(limit.headers.entries()),
);
