import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/harness.js";
import { runCli } from "../helpers/spawn.js";

// User names from --user, KEYWARDEN_USER and `admin create-key --user` follow the text rule of
// every other free-text field (service/validation.ts): refused with exit 2 and one line.

const temp = makeTempDir();
afterAll(() => temp.cleanup());

describe("the acting user's name on the command line", () => {
  it("refuses bidi controls, invisible characters and U+FFFD in --user and KEYWARDEN_USER, writing nothing", () => {
    const db = join(temp.dir, "keywarden.db");
    const cases: [string[], Record<string, string>, string][] = [
      [["admin", "create-key", "--db", db, "--name", "k", "--user", "ops\u202etoor"], {}, "--user / KEYWARDEN_USER must not contain bidirectional control characters: found U+202E, got \"ops<U+202E>toor\""],
      [["admin", "create-key", "--db", db, "--name", "k"], { KEYWARDEN_USER: "ops\u200b" }, "--user / KEYWARDEN_USER must not contain invisible characters: found U+200B at character 4, got \"ops<U+200B>\""],
      [["admin", "list-users", "--db", db], { KEYWARDEN_USER: "ops\ufffd" }, "--user / KEYWARDEN_USER must be valid Unicode text: found U+FFFD"],
    ];
    for (const [args, env, message] of cases) {
      const result = runCli(args, env);
      expect(result.status, args.join(" ")).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr.trim().split("\n")).toHaveLength(1);
      expect(result.stderr).toContain(message);
    }
    // None of them wrote a user (or a key): each was refused before the database was even opened.
    expect(existsSync(db)).toBe(false);
  });
});
