// list_api_keys and get_api_key: what a principal may see of keys (access.ts), a page at a time.
import { visibleOwner } from "./access.js";
import { projectOf, visibleKey, visibleKeyByPrefix, type ServiceContext } from "./context.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { echoValue, validationError, type FieldError } from "./errors.js";
import { pageOf, rowsForPage } from "./paging.js";
import type { Principal } from "./principal.js";
import { toApiKeyRecord, type ApiKeyRecord } from "./records.js";
import type { ApiKeyPage, GetApiKeyInput, ListApiKeysInput } from "./types.js";
import { checkInteger, KEY_STATUS_FILTERS, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX } from "./validation.js";

export async function listApiKeys(ctx: ServiceContext, principal: Principal, input: ListApiKeysInput = {}): Promise<ApiKeyPage> {
  const errors: FieldError[] = [];
  const limit = checkInteger("limit", input.limit, 1, PAGE_LIMIT_MAX, PAGE_LIMIT_DEFAULT, errors);
  const status = input.status ?? "active";
  // The tool's schema allows only these; a library or CLI caller is checked here.
  if (!KEY_STATUS_FILTERS.includes(status)) {
    errors.push({ key: "status", message: `must be one of ${KEY_STATUS_FILTERS.join(", ")}`, value: echoValue(String(status)) });
  }
  if (errors.length > 0) throw validationError(errors);
  const after = input.cursor === undefined ? null : decodeCursor("keys", input.cursor);
  const project = input.project_reference === undefined ? null : await projectOf(ctx, principal, input.project_reference);

  const now = ctx.clock();
  const rows = await ctx.store.listKeys({
    organizationId: principal.organizationId,
    userId: visibleOwner(principal),
    projectId: project?.id ?? null,
    status,
    now: now.toISOString(),
    after,
    limit: rowsForPage(limit),
  });
  const { items, nextCursor } = pageOf(rows, limit, (last) => encodeCursor("keys", { at: last.created_at, id: last.id }));
  return { keys: items.map((row) => toApiKeyRecord(row, now)), next_cursor: nextCursor };
}

export async function getApiKey(ctx: ServiceContext, principal: Principal, input: GetApiKeyInput): Promise<ApiKeyRecord> {
  if ((input.id === undefined) === (input.key_prefix === undefined)) {
    const message = "give exactly one of id and key_prefix";
    throw validationError(
      input.id === undefined ? [{ key: "id", message }] : [{ key: "key_prefix", message, value: echoValue(input.key_prefix) }],
    );
  }
  const key =
    input.id !== undefined ? await visibleKey(ctx, principal, "id", input.id) : await visibleKeyByPrefix(ctx, principal, input.key_prefix!);
  return toApiKeyRecord(key, ctx.clock());
}
