import type { KeyStore } from "../store/types.js";
import { defaultUseRecorder } from "./default-use-recorder.js";
import { DEFAULT_SERVICE_CONFIG } from "./policy.js";
import { KeyService } from "./service.js";
import type { VerifyOptions, VerifyResult } from "./types.js";

export interface VerifyApiKeyOptions extends VerifyOptions {
  /** Only when the first argument is a store: the KEYWARDEN_PEPPER the keys were hashed with. */
  pepper?: string;
  /** Only when the first argument is a store: the token brand (default kw). */
  keyBrand?: string;
}

/**
 * Verifies a token in-process, with the same checks and answer as the verify_api_key tool and
 * `POST /v1/keys/verify`: `valid`, `code` and, for a known key, its id, prefix, owner, project,
 * scopes and expiry. Never throws for a bad token (only for bad `requiredScopes`, a store failure,
 * or a store holding keys that cannot be verified with the settings given: see below).
 *
 * Pass the KeyService the rest of your program uses, or a store together with the pepper and key
 * brand it was written with:
 *
 *     verifyApiKey(service, token, { requiredScopes: ["orders:read"] })
 *     verifyApiKey(store, token, { requiredScopes: ["orders:read"], pepper: process.env.KEYWARDEN_PEPPER })
 */
export function verifyApiKey(verifier: KeyService | KeyStore, token: string, options: VerifyApiKeyOptions = {}): Promise<VerifyResult> {
  // The service reads only the VerifyOptions fields, so the options go through as they are.
  if (verifier instanceof KeyService) return verifier.verifyApiKey(token, options);
  let forStore: StoreVerifier;
  try {
    forStore = storeVerifierFor(verifier, options.pepper, options.keyBrand ?? DEFAULT_SERVICE_CONFIG.keyBrand);
  } catch (error) {
    // A pepper or brand refused (createTokenHasher, assertValidBrand): a rejection, as every other failure here.
    return Promise.reject(error as Error);
  }
  if (forStore.keysUsable) return forStore.service.verifyApiKey(token, options);
  return checkKeysUsable(forStore).then(() => forStore.service.verifyApiKey(token, options));
}

/** A service for a store and settings, and whether the store's keys were found verifiable with them. */
interface StoreVerifier {
  readonly service: KeyService;
  keysUsable: boolean;
}

/** One service per store and settings: verification is a hot path, so nothing is rebuilt per call. */
const verifiersByStore = new WeakMap<KeyStore, Map<string, StoreVerifier>>();

function storeVerifierFor(store: KeyStore, pepper: string | undefined, keyBrand: string): StoreVerifier {
  let verifiers = verifiersByStore.get(store);
  if (!verifiers) verifiersByStore.set(store, (verifiers = new Map()));
  // A brand is [a-z0-9] only (BRAND_PATTERN), so a space tells it from whatever the pepper holds.
  const settings = pepper === undefined ? keyBrand : `${keyBrand} ${pepper}`;
  let verifier = verifiers.get(settings);
  if (!verifier) {
    // Last use batched per store (defaultUseRecorder), not one disk sync per call.
    const service = new KeyService({ store, pepper, config: { ...DEFAULT_SERVICE_CONFIG, keyBrand }, useRecorder: defaultUseRecorder(store) });
    verifier = { service, keysUsable: false };
    verifiers.set(settings, verifier);
  }
  return verifier;
}

/**
 * The server refuses to start on a database holding keys it cannot hash (peppered keys without the
 * pepper or with another pepper than the one recorded, an algorithm newer than this build): each
 * would answer not_found forever, and nothing would say why. The library refuses the same way, at
 * the first call with these settings (a read of the recorded pepper's fingerprint and of the
 * stored algorithms; nothing is written), and again at each call until the store's keys are usable.
 */
async function checkKeysUsable(verifier: StoreVerifier): Promise<void> {
  const problem = await verifier.service.unverifiableKeysProblem("this store", "the pepper option of verifyApiKey (KEYWARDEN_PEPPER)", {
    recordPepper: false,
  });
  if (problem !== null) throw new Error(problem);
  verifier.keysUsable = true;
}
