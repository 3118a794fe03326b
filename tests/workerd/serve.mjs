// Serves the built worker on workerd through Miniflare's API (no wrangler proxy process):
// one workerd process, the Durable Object namespace, KV and Analytics Engine bindings of
// wrangler.toml, persisted local state.
// Usage: node tests/workerd/serve.mjs <port> <persist-dir> [NAME=value ...]
// Prints "ready <url>" once it answers; stops on SIGTERM.
import { Miniflare } from "miniflare";
import { fileURLToPath } from "node:url";
import path from "node:path";

const [port, persist, ...pairs] = process.argv.slice(2);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bindings = Object.fromEntries(
  pairs.map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]),
);
// The facts' dataset (wrangler.toml's FACTS) as a test-only sink: each data point the worker
// writes is printed as one line, "analytics-engine-point <json>", so tests see what
// Analytics Engine would receive.
const factsRecorder = {
  name: "facts-recorder",
  modules: true,
  script: `export default function () {
    return {
      writeDataPoint(point) {
        console.log("analytics-engine-point " + JSON.stringify(point ?? {}));
      },
    };
  }`,
};
const mf = new Miniflare({
  host: "127.0.0.1",
  port: Number(port),
  durableObjectsPersist: persist,
  kvPersist: persist,
  ...(process.env.INSPECTOR_PORT ? { inspectorPort: Number(process.env.INSPECTOR_PORT) } : {}),
  workers: [
    {
      name: "eindr-chat-edge",
      modules: true,
      modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
      scriptPath: path.join(root, "edge/cloudflare/build/index.js"),
      compatibilityDate: "2026-04-01",
      durableObjects: { CONVERSATIONS: { className: "ConversationObject", useSQLite: true } },
      kvNamespaces: ["ANSWERS"],
      wrappedBindings: { FACTS: { scriptName: "facts-recorder" } },
      bindings,
    },
    factsRecorder,
  ],
});
const url = await mf.ready;
console.log(`ready ${url}`);
const stop = async () => { await mf.dispose(); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
