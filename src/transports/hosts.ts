// Address checks shared by the configuration (--no-auth is loopback only) and the HTTP transport.
// Kept apart from http/ so that reading the configuration does not load Express.

/** 127.0.0.0/8, ::1 and localhost: the addresses --no-auth may bind to. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase();
  return bare === "localhost" || bare === "::1" || /^127(?:\.\d{1,3}){3}$/.test(bare);
}

export function isWildcardHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "");
  return bare === "0.0.0.0" || bare === "::" || bare === "";
}
