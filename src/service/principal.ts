import type { Transport } from "../store/types.js";

/** Who is acting: the user, and the API key when the call was authenticated by one. */
export interface Principal {
  userId: string;
  userName: string;
  organizationId: string;
  transport: Transport;
  /** The acting API key, when one authenticated the call. */
  keyId: string | null;
  /**
   * The acting key's scopes; null when no key acts (stdio, the CLI). What a principal holds is
   * decided by holdsScope in access.ts alone: read it there, not here.
   */
  scopes: string[] | null;
  /** Admins act on every user's keys, on projects and users, and may mint any scope. */
  isAdmin: boolean;
  clientAddress: string | null;
}
