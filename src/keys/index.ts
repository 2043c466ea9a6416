export * from "./base62.js";
export * from "./token.js";
export * from "./hash.js";
export * from "./ids.js";
