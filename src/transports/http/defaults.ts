// Defaults of `keywarden serve` (README, Configuration) that the HTTP server applies when its
// caller gives none, and that the configuration (src/config/http.ts) and `--help` (src/cli/serve.ts)
// name: written once, here, in a module that loads nothing, so the CLI can read them without the SDK.

export const DEFAULT_MAX_SESSIONS = 1000;
export const DEFAULT_MAX_SESSIONS_PER_KEY = 10;
export const DEFAULT_SESSION_IDLE_TIMEOUT_MS = 30 * 60_000;
export const DEFAULT_KEY_WATCH_INTERVAL_MS = 2000;
/** Failed authentications per client address (IPv6: per /64) before its further failures get 429. */
export const DEFAULT_AUTH_FAILURE_LIMIT = 30;
/** The window those failures are counted in, and further failures get 429 for. */
export const DEFAULT_AUTH_FAILURE_WINDOW_MS = 300_000;
