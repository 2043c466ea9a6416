import { DEFAULT_BRAND } from "../keys/token.js";

/** The policy numbers and switches (README, Policy); every one is configurable. */
export interface Policy {
  /** Active keys one user may hold; one more is refused with max_keys_reached. */
  maxActiveKeysPerUser: number;
  /** Expiry of a key created without `expires_at`; null means such keys never expire. */
  defaultExpiryDays: number | null;
  /** Latest allowed `expires_at`, in days from now; null means no limit. */
  maxExpiryDays: number | null;
  /** Scopes of a user-level key (one without a project). */
  defaultScopes: string[];
  /** Whether a caller authenticated by an API key may mint keys at all. */
  allowMintingWithKeys: boolean;
}

export interface ServiceConfig {
  policy: Policy;
  /** The token's brand, `kw` in `kw_…`. */
  keyBrand: string;
}

export const DEFAULT_POLICY: Policy = {
  maxActiveKeysPerUser: 5,
  defaultExpiryDays: 90,
  maxExpiryDays: 365,
  defaultScopes: ["tools:read", "tools:execute"],
  allowMintingWithKeys: true,
};

export const DEFAULT_SERVICE_CONFIG: ServiceConfig = { policy: DEFAULT_POLICY, keyBrand: DEFAULT_BRAND };

/** Rejects a policy whose numbers contradict each other; the message names the setting. */
export function checkPolicy(policy: Policy): void {
  if (!Number.isInteger(policy.maxActiveKeysPerUser) || policy.maxActiveKeysPerUser < 1) {
    throw new RangeError("max active keys per user must be a positive integer");
  }
  for (const [label, days] of [
    ["default expiry days", policy.defaultExpiryDays],
    ["max expiry days", policy.maxExpiryDays],
  ] as const) {
    if (days !== null && (!Number.isInteger(days) || days < 1)) throw new RangeError(`${label} must be a positive integer or "none"`);
  }
  if (policy.maxExpiryDays !== null) {
    if (policy.defaultExpiryDays === null) {
      throw new RangeError('default expiry "none" needs max expiry "none" too: a key without expiry would exceed the maximum');
    }
    if (policy.defaultExpiryDays > policy.maxExpiryDays) {
      throw new RangeError(`default expiry days (${policy.defaultExpiryDays}) exceeds max expiry days (${policy.maxExpiryDays})`);
    }
  }
}
