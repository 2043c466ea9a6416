// The session defaults, where the configuration reads them without loading Express (src/config.ts).
export { DEFAULT_KEY_WATCH_INTERVAL_MS, DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_KEY, DEFAULT_SESSION_IDLE_TIMEOUT_MS } from "./http/sessions.js";
