// The secret-hygiene workload, independent of the transport: it mints keys (creates and
// rotations) through an MCP client and calls every other tool around them, keeping what each
// call returned so that the test can look for secrets in all of it.
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { randomBase62 } from "../../src/keys/base62.js";
import { checksumOf } from "../../src/keys/token.js";
import { secretOf } from "../helpers/harness.js";
import { call, type SecretScanner, type ToolOutcome } from "./support.js";

export interface HygieneRecord {
  /** Every token minted (create and rotate results). */
  tokens: string[];
  /** Tokens that were never valid (forged, mistyped) but went through verify: they must not leak either. */
  forged: string[];
  /** Serialized results of the minting calls, each with the one token it may contain. */
  mintResults: { raw: string; token: string }[];
  /** Serialized results of every other call. */
  otherResults: string[];
  /** Calls by tool name. */
  calls: Record<string, number>;
}

export function newHygieneRecord(): HygieneRecord {
  return { tokens: [], forged: [], mintResults: [], otherResults: [], calls: {} };
}

/** A token with a valid checksum and a real key's prefix but a made-up secret: verify says not_found. */
export function forgeToken(realToken: string): string {
  const [brand, publicId] = realToken.split("_") as [string, string];
  const body = `${brand}_${publicId}_${randomBase62(32)}`;
  return body + checksumOf(body);
}

/**
 * Runs `mints / 2` iterations of: create a key, read and update it, verify it (and a forged and a
 * mistyped twin), rotate it, verify both, read its events, revoke the successor; every tenth
 * iteration also lists keys and events and asks whoami. Revoking as it goes keeps the user under
 * the cap. Tokens are added to `scanner` as soon as they exist.
 */
export async function runHygieneWorkload(
  client: Client,
  options: { mints: number; scanner: SecretScanner; record: HygieneRecord; pepper?: string; label: string },
): Promise<void> {
  const { scanner, record } = options;
  const expectOk = (name: string, outcome: ToolOutcome): Record<string, unknown> => {
    if (!outcome.ok) throw new Error(`${options.label}: ${name} failed: ${outcome.raw.slice(0, 500)}`);
    return outcome.body;
  };
  const other = async (name: string, args: Record<string, unknown>, mustSucceed = true): Promise<Record<string, unknown>> => {
    const outcome = await call(client, name, args);
    record.calls[name] = (record.calls[name] ?? 0) + 1;
    record.otherResults.push(outcome.raw);
    return mustSucceed ? expectOk(name, outcome) : outcome.body;
  };
  const mint = async (name: string, args: Record<string, unknown>): Promise<{ id: string; key: string }> => {
    const outcome = await call(client, name, args);
    record.calls[name] = (record.calls[name] ?? 0) + 1;
    const body = expectOk(name, outcome) as { id: string; key: string };
    record.tokens.push(body.key);
    scanner.addToken(body.key, { pepper: options.pepper, withHashes: true });
    record.mintResults.push({ raw: outcome.raw, token: body.key });
    return body;
  };

  for (let i = 0; i < options.mints / 2; i++) {
    const created = await mint("create_api_key", { name: `${options.label} hygiene ${i}` });
    await other("get_api_key", { id: created.id });
    await other("get_api_key", { key_prefix: created.key.split("_").slice(0, 2).join("_") });
    await other("update_api_key", { id: created.id, name: `${options.label} renamed ${i}`, description: `iteration ${i}` });
    const verified = await other("verify_api_key", { key: created.key, required_scopes: ["tools:read"] });
    if (verified.code !== "valid") throw new Error(`${options.label}: a fresh key did not verify: ${JSON.stringify(verified)}`);

    const forged = forgeToken(created.key);
    const typo = created.key.slice(0, -1) + (created.key.endsWith("A") ? "B" : "A");
    record.forged.push(forged, typo);
    scanner.add(secretOf(forged), `forged secret ${i}`);
    // The typo shares all but its last character with the real secret, whose needle covers it.
    const forgedResult = await other("verify_api_key", { key: forged });
    const typoResult = await other("verify_api_key", { key: typo });
    if (forgedResult.code !== "not_found" || typoResult.code !== "malformed") {
      throw new Error(`${options.label}: forged/typo verified as ${forgedResult.code}/${typoResult.code}`);
    }

    const rotated = await mint("rotate_api_key", { id: created.id, grace_period_seconds: i % 2 === 0 ? 0 : 300 });
    await other("verify_api_key", { key: created.key });
    await other("verify_api_key", { key: rotated.key });
    await other("list_key_events", { key_id: created.id });
    await other("revoke_api_key", { id: rotated.id, reason: `hygiene ${i}` });
    // An attempt to rotate a revoked key: an error result must not carry a secret either.
    await other("rotate_api_key", { id: rotated.id }, false);
    if (i % 2 === 1) await other("revoke_api_key", { id: created.id }); // end the grace period
    if (i % 10 === 0) {
      await other("list_api_keys", { status: "all", limit: 100 });
      await other("list_key_events", { limit: 100 });
      await other("whoami", {});
      await other("list_projects", {});
    }
  }
}
