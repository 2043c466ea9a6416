// Flags and environment → checked configuration. Imports keys/, service/ and store/ rules only,
// never transports/: the stdio server and the admin commands must not load the HTTP stack.
export { ConfigError, daysFromNow, nonNegativeInteger, parseName, parseScopeList, positiveInteger } from "./parsers.js";
export { defaultDatabasePath, defaultUserName, LOG_LEVELS, resolveConfig, type AppConfig, type DatabaseConfig, type RawOptions } from "./app.js";
export { DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, resolveHttpConfig, type HttpConfig, type ServeRawOptions } from "./http.js";
