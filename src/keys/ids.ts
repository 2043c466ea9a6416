import { randomBase62 } from "./base62.js";

/** Typed ids: the prefix tells what a thing is at a glance, the 20 random base62 characters (~119 bits) make it unique. */
export type OrganizationId = `org_${string}`;
export type UserId = `usr_${string}`;
export type ProjectId = `prj_${string}`;
export type ApiKeyId = `key_${string}`;
export type KeyEventId = `evt_${string}`;

const ID_RANDOM_LENGTH = 20;

export const newOrganizationId = (): OrganizationId => `org_${randomBase62(ID_RANDOM_LENGTH)}`;
export const newUserId = (): UserId => `usr_${randomBase62(ID_RANDOM_LENGTH)}`;
export const newProjectId = (): ProjectId => `prj_${randomBase62(ID_RANDOM_LENGTH)}`;
export const newApiKeyId = (): ApiKeyId => `key_${randomBase62(ID_RANDOM_LENGTH)}`;
export const newKeyEventId = (): KeyEventId => `evt_${randomBase62(ID_RANDOM_LENGTH)}`;

const PROJECT_ID_PATTERN = /^prj_[0-9A-Za-z]{20}$/;
export const isProjectId = (value: string): value is ProjectId => PROJECT_ID_PATTERN.test(value);
