import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

// The house (README, Development): each layer imports only the layers above it in this list, and
// no source file grows past 400 lines. Read from the import statements of every file in src/.

const ROOT = join(import.meta.dirname, "..");
const SRC = join(ROOT, "src");

/** Layers, top first; a file may import its own layer and those before it. */
const LAYERS: readonly (readonly string[])[] = [
  ["src/version.ts", "src/net/", "src/keys/"],
  ["src/store/"],
  ["src/service/"],
  ["src/tools/"],
  ["src/server.ts"],
  ["src/transports/"],
  ["src/config/"],
  ["src/cli/", "src/cli.ts"],
  // Entry points and build scripts sit below everything they re-export.
  ["src/index.ts", "src/mcp.ts", "src/http.ts", "src/postgres.ts", "src/scripts/"],
];

function layerOf(path: string): number {
  const index = LAYERS.findIndex((layer) => layer.some((prefix) => (prefix.endsWith("/") ? path.startsWith(prefix) : path === prefix)));
  if (index < 0) throw new Error(`${path} is in no layer: add it to LAYERS`);
  return index;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : [],
  );
}

describe("src/", () => {
  const files = sources(SRC);

  it("imports run only from a layer to the layers above it", () => {
    const upward = files.flatMap((file) => {
      const from = relative(ROOT, file);
      return [...readFileSync(file, "utf8").matchAll(/(?:from|import)\s*\(?\s*"(\.[^"]+)"/g)]
        .map((match) => relative(ROOT, join(file, "..", match[1]!)).replace(/\.js$/, ".ts"))
        .filter((to) => layerOf(to) > layerOf(from))
        .map((to) => `${from} -> ${to}`);
    });
    expect(upward).toStrictEqual([]);
  });

  it("has no file over 400 lines", () => {
    const long = files.map((file) => [relative(ROOT, file), readFileSync(file, "utf8").split("\n").length] as const).filter(([, lines]) => lines > 400);
    expect(long).toStrictEqual([]);
  });
});
