// Moved to src/net/hosts.ts, below the configuration, so that config/ does not import transports/.
export { isLoopbackHost, isWildcardHost } from "../net/hosts.js";
