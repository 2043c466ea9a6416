// `npm run schemas` writes schemas/<tool>.{input,output}.schema.json from the zod definitions;
// `npm run schemas:check` fails when the checked-in files drift from them (or a stray file remains).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { allTools } from "../tools/index.js";
import { toolJsonSchemas } from "../tools/tool.js";

const directory = join(process.cwd(), "schemas");

function expectedFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const tool of allTools) {
    const { input, output } = toolJsonSchemas(tool);
    files.set(`${tool.name}.input.schema.json`, `${JSON.stringify(input, null, 2)}\n`);
    files.set(`${tool.name}.output.schema.json`, `${JSON.stringify(output, null, 2)}\n`);
  }
  return files;
}

const mode = process.argv[2];
const expected = expectedFiles();
const present = existsSync(directory) ? readdirSync(directory).filter((file) => file.endsWith(".schema.json")) : [];

if (mode === "write") {
  mkdirSync(directory, { recursive: true });
  for (const file of present) if (!expected.has(file)) rmSync(join(directory, file));
  for (const [file, text] of expected) writeFileSync(join(directory, file), text);
  console.log(`wrote ${expected.size} schema files to schemas/`);
} else if (mode === "check") {
  const problems: string[] = [];
  for (const [file, text] of expected) {
    const path = join(directory, file);
    if (!existsSync(path)) problems.push(`missing: schemas/${file}`);
    else if (readFileSync(path, "utf8") !== text) problems.push(`differs from the zod definition: schemas/${file}`);
  }
  for (const file of present) if (!expected.has(file)) problems.push(`no tool defines: schemas/${file}`);
  if (problems.length > 0) {
    console.error(`schemas/ has drifted (run npm run schemas and review the diff):\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`schemas/ matches the ${allTools.length} tool definitions`);
} else {
  console.error("usage: schemas.js write|check");
  process.exit(2);
}
