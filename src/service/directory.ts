// The organization's people and projects: who acts locally, projects, users, whoami.
import { newProjectId } from "../keys/ids.js";
import type { ProjectRow } from "../store/types.js";
import { assertAdmin } from "./access.js";
import { eventRowBy, type ServiceContext } from "./context.js";
import { echoValue, ServiceError, validationError, type FieldError } from "./errors.js";
import type { Principal } from "./principal.js";
import { toProjectRecord, toUserRecord, type ProjectRecord, type UserRecord } from "./records.js";
import type { CreateProjectInput, LocalPrincipalOptions, WhoAmI } from "./types.js";
import { checkName, checkScopes, SLUG_PATTERN } from "./validation.js";

/** The principal of a caller without a key (stdio, the CLI): the named user, created on first use. */
export async function localPrincipal(ctx: ServiceContext, { userName: rawName, transport, isAdmin }: LocalPrincipalOptions): Promise<Principal> {
  // The same names rule as every other free-text field: a user name is shown to admins and their agents.
  const errors: FieldError[] = [];
  const userName = checkName("user_name", rawName, errors);
  if (errors.length > 0) throw validationError(errors);
  const now = ctx.clock().toISOString();
  const organization = await ctx.store.ensureDefaultOrganization(now);
  const user = await ctx.store.ensureUser(organization.id, userName, now);
  return { userId: user.id, userName: user.name, organizationId: organization.id, transport, keyId: null, scopes: null, isAdmin, clientAddress: null };
}

export async function createProject(ctx: ServiceContext, principal: Principal, input: CreateProjectInput): Promise<ProjectRecord> {
  assertAdmin(principal, "creating a project");
  const errors: FieldError[] = [];
  if (!SLUG_PATTERN.test(input.slug)) {
    errors.push({ key: "slug", message: "must match ^[a-z0-9][a-z0-9-]{0,62}$", value: echoValue(input.slug) });
  }
  const name = checkName("name", input.name, errors);
  const defaultScopes = checkScopes("default_scopes", input.default_scopes ?? ctx.config.policy.defaultScopes, errors);
  if (defaultScopes.length === 0) errors.push({ key: "default_scopes", message: "must name at least one scope", value: [] });
  if (errors.length > 0) throw validationError(errors);

  const now = ctx.clock().toISOString();
  const project: ProjectRow = { id: newProjectId(), organization_id: principal.organizationId, slug: input.slug, name, default_scopes: defaultScopes, created_at: now };
  const event = eventRowBy(principal, null, "project.created", now, { project_id: project.id, slug: project.slug });
  const result = await ctx.store.insertProject(project, event);
  if (!result.ok) {
    throw new ServiceError("conflict", `a project with slug "${input.slug}" already exists`, [{ key: "slug", message: "already_exists", value: input.slug }]);
  }
  return toProjectRecord(project);
}

/** The organization's users with their active-key counts: an operator's view, admin only. */
export async function listUsers(ctx: ServiceContext, principal: Principal): Promise<UserRecord[]> {
  assertAdmin(principal, "listing users");
  return (await ctx.store.listUsers(principal.organizationId, ctx.clock().toISOString())).map(toUserRecord);
}

export async function listProjects(ctx: ServiceContext, principal: Principal): Promise<ProjectRecord[]> {
  return (await ctx.store.listProjects(principal.organizationId)).map(toProjectRecord);
}

export function whoami(principal: Principal): WhoAmI {
  return {
    user_id: principal.userId,
    user_name: principal.userName,
    organization_id: principal.organizationId,
    transport: principal.transport,
    is_admin: principal.isAdmin,
    key_id: principal.keyId,
    scopes: principal.scopes === null ? null : [...principal.scopes],
  };
}
