import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { expect } from "vitest";
import { createTokenHasher } from "../../src/keys/hash.js";
import type { Policy } from "../../src/service/policy.js";
import type { Principal } from "../../src/service/principal.js";
import { connectClient, openHarness, secretOf, type Harness } from "./harness.js";

export interface ErrorPayload {
  code: string;
  message: string;
  errors: { key: string; message: string; value?: unknown }[];
}

/** Calls a tool that must succeed; checks text and structuredContent agree and returns the latter. */
export async function callOk<T = Record<string, unknown>>(client: Client, name: string, args: Record<string, unknown> = {}): Promise<T> {
  const result = await client.callTool({ name, arguments: args });
  if (result.isError) throw new Error(`${name} failed: ${JSON.stringify(result.content)}`);
  const content = result.content as { type: string; text: string }[];
  expect(content).toHaveLength(1);
  expect(JSON.parse(content[0]!.text)).toEqual(result.structuredContent);
  return result.structuredContent as T;
}

/** Calls a tool that must fail; checks it is a text-only error result and returns its error body. */
export async function callError(client: Client, name: string, args: Record<string, unknown> = {}): Promise<ErrorPayload> {
  const result = await client.callTool({ name, arguments: args });
  expect(result.isError).toBe(true);
  expect(result.structuredContent).toBeUndefined();
  const content = result.content as { type: string; text: string }[];
  const body = JSON.parse(content[0]!.text) as { error: ErrorPayload };
  return body.error;
}

/** The field keys an error names, in order. */
export const errorKeys = (error: ErrorPayload): string[] => error.errors.map((field) => field.key);

/**
 * Fails if the serialized value contains any of the tokens, their secret parts, their hashes (hex
 * or base64, with or without the pepper) or a field named like a hash.
 */
export function expectNoSecrets(value: unknown, tokens: string[], pepper?: string): void {
  const text = JSON.stringify(value);
  expect(text).not.toMatch(/key_hash|hash_algorithm/);
  const hashers = [createTokenHasher(), ...(pepper ? [createTokenHasher(pepper)] : [])];
  for (const token of tokens) {
    expect(text).not.toContain(token);
    expect(text).not.toContain(secretOf(token));
    expect(text).not.toContain(secretOf(token).slice(0, 32));
    for (const hasher of hashers) {
      const hash = Buffer.from(hasher.hash(token));
      expect(text).not.toContain(hash.toString("hex"));
      expect(text).not.toContain(hash.toString("base64"));
      expect(text).not.toContain(hash.toString("base64url"));
    }
  }
}

export interface World {
  harness: Harness;
  /** alice: an ordinary user (the harness principal). */
  alice: Principal;
  bob: Principal;
  /** root: an admin. */
  root: Principal;
  aliceClient: Client;
  bobClient: Client;
  rootClient: Client;
  close(): Promise<void>;
}

/** One database, three users, an MCP client for each. */
export async function openWorld(options: { policy?: Partial<Policy>; pepper?: string } = {}): Promise<World> {
  const harness = await openHarness({ ...options, userName: "alice" });
  const { service } = harness;
  const bob = await service.localPrincipal({ userName: "bob", transport: "stdio", isAdmin: false });
  const root = await service.localPrincipal({ userName: "root", transport: "stdio", isAdmin: true });
  const [aliceClient, bobClient, rootClient] = await Promise.all([
    connectClient(service, harness.principal),
    connectClient(service, bob),
    connectClient(service, root),
  ]);
  return {
    harness,
    alice: harness.principal,
    bob,
    root,
    aliceClient,
    bobClient,
    rootClient,
    close: async () => {
      await Promise.all([aliceClient.close(), bobClient.close(), rootClient.close()]);
      await harness.close();
    },
  };
}

export const DAY_MS = 86_400_000;
