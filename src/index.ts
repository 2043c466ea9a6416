// `keywarden`: the library. Open a store, build the service, verify keys in-process. Nothing here
// loads the MCP SDK or Express (test/e2e/entry-points.test.ts checks it): the MCP server is
// `keywarden/mcp` (src/mcp.ts), the HTTP transport `keywarden/http` (src/http.ts).
export { SqliteKeyStore, StoreOpenError, type SqliteStoreOptions } from "./store/sqlite.js";
export type { ApiKeyRow, KeyEventRow, KeyStatus, KeyStatusFilter, KeyStore, KeyUse, ProjectRow, Transport } from "./store/types.js";
export { KeyService } from "./service/service.js";
export type {
  ApiKeyPage,
  Clock,
  ConfirmKeyStop,
  CreateApiKeyInput,
  CreatedApiKey,
  KeyEventPage,
  KeyServiceOptions,
  KeyUseRecorder,
  AuthFailure,
  AuthFailureRecorder,
  RotatedApiKey,
  VerifyCode,
  VerifyOptions,
  VerifyResult,
  WhoAmI,
} from "./service/types.js";
export type { ApiKeyRecord, KeyEventRecord, ProjectRecord, UserRecord } from "./service/records.js";
export { verifyApiKey, type VerifyApiKeyOptions } from "./service/verify.js";
export { defaultUseRecorder } from "./service/default-use-recorder.js";
export { ServiceError, type ErrorBody, type ErrorCode, type FieldError } from "./service/errors.js";
export { DEFAULT_POLICY, DEFAULT_SERVICE_CONFIG, type Policy, type ServiceConfig } from "./service/policy.js";
export type { Principal } from "./service/principal.js";
export { VERSION } from "./version.js";
export { CoalescingUseRecorder, type CoalescingUseRecorderOptions } from "./service/use-recorder.js";
export { BufferedFailureRecorder, type BufferedFailureRecorderOptions } from "./service/failure-recorder.js";
