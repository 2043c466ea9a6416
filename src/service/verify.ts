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
 * scopes and expiry. Never throws for a bad token (only for bad `requiredScopes` or a store failure).
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
  return serviceFor(verifier, options.pepper, options.keyBrand ?? DEFAULT_SERVICE_CONFIG.keyBrand).verifyApiKey(token, options);
}

/** One service per store and settings: verification is a hot path, so nothing is rebuilt per call. */
const servicesByStore = new WeakMap<KeyStore, Map<string, KeyService>>();

function serviceFor(store: KeyStore, pepper: string | undefined, keyBrand: string): KeyService {
  let services = servicesByStore.get(store);
  if (!services) servicesByStore.set(store, (services = new Map()));
  // A brand is [a-z0-9] only (BRAND_PATTERN), so a space tells it from whatever the pepper holds.
  const settings = pepper === undefined ? keyBrand : `${keyBrand} ${pepper}`;
  let service = services.get(settings);
  if (!service) {
    // Last use batched per store (defaultUseRecorder), not one disk sync per call.
    service = new KeyService({ store, pepper, config: { ...DEFAULT_SERVICE_CONFIG, keyBrand }, useRecorder: defaultUseRecorder(store) });
    services.set(settings, service);
  }
  return service;
}
