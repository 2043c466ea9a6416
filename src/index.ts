// keywarden as a library: open a store, build the service, verify keys in-process, or serve MCP
// from your own process.
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
export { ServiceError, type ErrorBody, type ErrorCode, type FieldError } from "./service/errors.js";
export { DEFAULT_POLICY, DEFAULT_SERVICE_CONFIG, type Policy, type ServiceConfig } from "./service/policy.js";
export type { Principal } from "./service/principal.js";
export { createServer, type CreateServerOptions } from "./server.js";
export { allTools } from "./tools/index.js";
export { VERSION } from "./version.js";
export { CoalescingUseRecorder, type CoalescingUseRecorderOptions } from "./service/use-recorder.js";
export { BufferedFailureRecorder, type BufferedFailureRecorderOptions } from "./service/failure-recorder.js";
export { startHttpServer, type HttpServerOptions, type RunningHttpServer } from "./transports/http.js";
