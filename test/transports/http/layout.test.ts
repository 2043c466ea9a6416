import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

// The transport layer's place (README, Development): it may import the layers above it (keys,
// store, service, tools, server) and never the composition root (cli, config) below it; and no
// file of it grows past 400 lines.

const ROOT = join(import.meta.dirname, "../../..");
const TRANSPORTS = join(ROOT, "src/transports");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : [],
  );
}

describe("src/transports", () => {
  const files = sources(TRANSPORTS);

  it("imports nothing of the CLI or the configuration", () => {
    const offending = files.flatMap((file) =>
      [...readFileSync(file, "utf8").matchAll(/from "([^"]+)"/g)]
        .map((match) => match[1]!)
        .filter((target) => target.startsWith("."))
        .map((target) => relative(ROOT, join(file, "..", target)))
        .filter((target) => /^src\/(cli|config|index)(\.|\/)/.test(target))
        .map((target) => `${relative(ROOT, file)} -> ${target}`),
    );
    expect(offending).toStrictEqual([]);
  });

  it("has no file over 400 lines", () => {
    const long = files.map((file) => [relative(ROOT, file), readFileSync(file, "utf8").split("\n").length] as const).filter(([, lines]) => lines > 400);
    expect(long).toStrictEqual([]);
  });
});
