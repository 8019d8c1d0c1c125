/**
 * Writes docs/manifest.schema.json, the JSON Schema of manifest.json for downstream tools, from
 * the zod schema the finalize stage writes by (src/pipeline/artifacts.ts):
 *
 *   npx tsx scripts/manifest-schema.ts
 *
 * test/contract.test.ts fails while the published file differs from what this would write.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { manifestSchema } from "../src/pipeline/artifacts.js";

export const manifestSchemaPath = resolve(import.meta.dirname, "..", "docs", "manifest.schema.json");

/**
 * The published text. Input mode: objects stay open to fields a later version adds, so a tool
 * checking manifests against this file keeps accepting them.
 */
export function manifestSchemaText(): string {
  return `${JSON.stringify(z.toJSONSchema(manifestSchema, { io: "input" }), null, 2)}\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) {
  writeFileSync(manifestSchemaPath, manifestSchemaText());
  console.log(`wrote ${manifestSchemaPath}`);
}
