import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startHttpServer, type RunningHttpServer } from "../../src/transports/http.js";
import { secretOf } from "../helpers/harness.js";
import { callError, openWorld, type World } from "../helpers/lifecycle.js";

// A token pasted into the wrong field must not come back in the error: an echoed value never
// carries a token's secret part (error bodies are made in one place, service/errors.ts).

interface Created {
  id: string;
  key: string;
  key_prefix: string;
}

let world: World;
let token: Created;
beforeEach(async () => {
  world = await openWorld();
  token = (await world.harness.service.createApiKey(world.alice, { name: "pasted" })) as Created;
});
afterEach(() => world.close());

describe("a token in the wrong field", () => {
  it("get_api_key.key_prefix and list_key_events.key_id: the error names the field and shows the prefix, never the secret", async () => {
    const byPrefix = await callError(world.aliceClient, "get_api_key", { key_prefix: token.key });
    expect(byPrefix).toEqual({
      code: "not_found",
      message: "no API key with this key_prefix",
      errors: [{ key: "key_prefix", message: "not_found", value: `${token.key_prefix}_[redacted]` }],
    });
    const byKeyId = await callError(world.aliceClient, "list_key_events", { key_id: token.key });
    expect(byKeyId).toEqual({
      code: "not_found",
      message: "no API key with this id",
      errors: [{ key: "key_id", message: "not_found", value: `${token.key_prefix}_[redacted]` }],
    });
  });

  it("is redacted wherever it appears: inside a longer value, as a bare secret, as an unknown field's name, and mistyped", async () => {
    const secret = secretOf(token.key);
    const mistyped = `${token.key.slice(0, -1)}x`;
    const errors = [
      await callError(world.aliceClient, "get_api_key", { id: `Bearer ${token.key}` }),
      await callError(world.aliceClient, "get_api_key", { id: secret }),
      await callError(world.aliceClient, "get_api_key", { id: mistyped }),
      await callError(world.aliceClient, "whoami", { [token.key]: 1 }),
      await callError(world.aliceClient, "update_api_key", { id: token.id, name: `${token.key}\u202e` }),
    ];
    expect(errors.map((error) => error.errors.map((field) => [field.key, field.value]))).toEqual([
      [["id", `Bearer ${token.key_prefix}_[redacted]`]],
      [["id", "[redacted]"]],
      [["id", `${token.key_prefix}_[redacted]`]],
      [[`${token.key_prefix}_[redacted]`, undefined]],
      [["name", `${token.key_prefix}_[redacted]<U+202E>`]],
    ]);
    expect(JSON.stringify(errors)).not.toContain(secret.slice(0, 12));
  });
});

describe("the verify endpoint's 400 body", () => {
  let server: RunningHttpServer;
  afterEach(() => server?.close(0));

  it("never carries a token's secret part, whichever field it was sent in", async () => {
    const silent = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
    server = await startHttpServer({ service: world.harness.service, version: "test", logger: silent, host: "127.0.0.1", port: 0 });
    const gateway = await world.harness.service.createApiKey(world.root, { name: "gateway", scopes: ["keys:verify"] });
    const verify = async (body: unknown) => {
      const response = await fetch(new URL("/v1/keys/verify", server.url), {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${gateway.key}` },
        body: JSON.stringify(body),
      });
      return { status: response.status, text: await response.text() };
    };
    const answers = [
      await verify({ key: token.key, [token.key]: true }),
      await verify({ key: token.key, required_scopes: [token.key] }),
      await verify({ key: token.key, required_scopes: token.key }),
    ];
    expect(answers.map((answer) => answer.status)).toEqual([400, 400, 400]);
    expect(JSON.parse(answers[0]!.text)).toEqual({
      error: {
        code: "validation_error",
        message: `invalid ${token.key_prefix}_[redacted]: unknown field`,
        errors: [{ key: `${token.key_prefix}_[redacted]`, message: "unknown field" }],
      },
    });
    for (const answer of answers) expect(answer.text).not.toContain(secretOf(token.key).slice(0, 12));
  });
});
