/**
 * The Bedrock lifecycle gate and `maskfleet models cloud`, through the real @aws-sdk/client-bedrock
 * against the control-plane stand-in (test/standins/bedrock-control.ts), reached the way the SDK
 * finds it in production: AWS_ENDPOINT_URL_BEDROCK. Dummy credentials; nothing leaves 127.0.0.1.
 */
import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { checkBedrockModels, formatCloudModels, listImageEditingModels, type CloudModelRow, type LifecycleOptions } from "../src/generators/lifecycle.js";
import type { AwsSettings } from "../src/runtime/aws.js";
import { ConfigError } from "../src/runtime/errors.js";
import { runMaskfleet, scratchDir } from "./helpers.js";
import { startBedrockControlStandIn, type ControlStandIn, type ControlStandInOptions } from "./standins/bedrock-control.js";

const TITAN_V1 = "amazon.titan-image-generator-v1";
const TITAN_V2 = "amazon.titan-image-generator-v2:0";
const NOVA = "amazon.nova-canvas-v1:0";
const INPAINT = "us.stability.stable-image-inpaint-v1:0";
const INSTEAD = "use --generator stability (Stability AI Image Services)";
const NOW = new Date("2026-12-01T00:00:00Z");

// The SDK's own environment: dummy credentials, no instance metadata, no shared files, no region.
const awsEnv: NodeJS.ProcessEnv = {
  AWS_ACCESS_KEY_ID: "AKIDSTANDIN",
  AWS_SECRET_ACCESS_KEY: "x",
  AWS_EC2_METADATA_DISABLED: "true",
  MASKFLEET_REGION: "",
  MASKFLEET_AWS_PROFILE: "",
};
for (const key of ["AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"]) delete process.env[key];
Object.assign(process.env, awsEnv);

let standIn: ControlStandIn | undefined;

async function start(opts: ControlStandInOptions = {}): Promise<ControlStandIn> {
  standIn = await startBedrockControlStandIn(opts);
  process.env.AWS_ENDPOINT_URL_BEDROCK = standIn.endpoint;
  return standIn;
}

/** us-east-1, with a runtime endpoint override the control plane must NOT use (nothing listens there). */
const aws: AwsSettings = { region: "us-east-1", endpoints: { bedrock: "http://127.0.0.1:9" } };

function gate(): LifecycleOptions & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, warn: (line) => void warnings.push(line), insteadOf: () => INSTEAD, now: NOW };
}

/** Asserts a one-line ConfigError on modelId containing every `parts`. */
async function rejectsWith(p: Promise<unknown>, ...parts: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `a ConfigError, got ${String(e)}`);
    assert.equal(e.key, "modelId");
    assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
    assert.ok(!e.message.includes("AKIDSTANDIN"), "no credentials in the message");
    for (const part of parts) assert.ok(e.message.includes(part), `"${part}" in: ${e.message}`);
    return true;
  });
}

describe("checkBedrockModels", () => {
  before(() => scratchDir("lifecycle"));
  afterEach(async () => {
    await standIn?.close();
    standIn = undefined;
  });

  it("an ACTIVE Stability inference profile passes: profile resolved, its model and availability checked, all SigV4-signed for the region", async () => {
    const s = await start();
    const g = gate();
    await checkBedrockModels([INPAINT], aws, g);
    assert.deepEqual(g.warnings, []);
    assert.deepEqual(
      s.requests.map((r) => [r.operation, r.status, r.region]),
      [
        ["GetInferenceProfile", 200, "us-east-1"],
        ["GetFoundationModel", 200, "us-east-1"],
        ["GetFoundationModelAvailability", 200, "us-east-1"],
      ],
    );
    assert.ok(s.requests[1]?.path.includes("stability.stable-image-inpaint-v1"), "the profile's foundation model, once for its three regions");
  });

  it("Titan v1 and v2 are gone: one line naming the model, v2's end-of-life date, and what to use instead", async () => {
    await start();
    await rejectsWith(checkBedrockModels([TITAN_V2], aws, gate()), TITAN_V2, "end of life", "2026-06-30", "us-east-1", INSTEAD);
    await rejectsWith(checkBedrockModels([TITAN_V1], aws, gate()), TITAN_V1, "not offered in us-east-1", INSTEAD);
  });

  it("a LEGACY Nova Canvas: exactly one warning with its end-of-life date, and the run goes on", async () => {
    await start({ catalog: [{ modelId: NOVA, status: "LEGACY", legacyTime: "2026-03-30", endOfLifeTime: "2027-03-31" }] });
    const g = gate();
    await checkBedrockModels([NOVA, NOVA], aws, g);
    assert.equal(g.warnings.length, 1, g.warnings.join("\n"));
    const [line] = g.warnings as [string];
    for (const part of [NOVA, "Legacy", "2027-03-31", INSTEAD]) assert.ok(line.includes(part), `"${part}" in: ${line}`);
    assert.ok(!line.includes("\n"));
  });

  it("a LEGACY answer with no dates: the table's end-of-life date", async () => {
    await start({ catalog: [{ modelId: NOVA, status: "LEGACY" }] });
    const g = gate();
    await checkBedrockModels([NOVA], aws, g);
    assert.equal(g.warnings.length, 1);
    assert.match(g.warnings[0] as string, /Legacy.*2026-09-30/);
  });

  it("an answer whose end of life has passed is gone, with that date", async () => {
    await start({ catalog: [{ modelId: NOVA, status: "LEGACY", endOfLifeTime: "2026-11-30" }] });
    await rejectsWith(checkBedrockModels([NOVA], aws, gate()), NOVA, "end of life on Bedrock on 2026-11-30", INSTEAD);
  });

  it("AccessDenied on GetFoundationModel: one warning saying why, no throw", async () => {
    await start({ denyGetFoundationModel: true });
    const g = gate();
    await checkBedrockModels([INPAINT], aws, g);
    assert.equal(g.warnings.length, 1, g.warnings.join("\n"));
    assert.match(g.warnings[0] as string, /cannot check the lifecycle.*AccessDeniedException.*bedrock:GetFoundationModel/);
    assert.ok(!(g.warnings[0] as string).includes("\n"));
  });

  it("NOT_AUTHORIZED for this account: ConfigError 'not enabled'", async () => {
    await start({ notAuthorized: ["stability.stable-image-inpaint-v1:0"] });
    await rejectsWith(checkBedrockModels([INPAINT], aws, gate()), INPAINT, "is not enabled for this account in us-east-1", "Bedrock console", INSTEAD);
  });

  it("the availability lookup denied: skipped silently", async () => {
    await start({ deny: ["GetFoundationModelAvailability"] });
    const g = gate();
    await checkBedrockModels([INPAINT], aws, g);
    assert.deepEqual(g.warnings, []);
  });

  it("a Stability profile outside the Stability regions is not offered there", async () => {
    await start({ region: "eu-west-1" });
    await rejectsWith(checkBedrockModels([INPAINT], { region: "eu-west-1" }, gate()), INPAINT, "not offered in eu-west-1");
  });

  it("requests signed for another region are refused: one line 'cannot check'", async () => {
    await start({ region: "us-west-2" });
    await rejectsWith(checkBedrockModels([TITAN_V2], aws, gate()), "cannot check Bedrock model", TITAN_V2, "InvalidSignatureException");
  });

  it("nothing listening: one line 'cannot check'", async () => {
    const s = await start();
    await s.close();
    standIn = undefined;
    await rejectsWith(checkBedrockModels([NOVA], aws, gate()), `cannot check Bedrock model ${NOVA} in us-east-1`);
  });
});

describe("models cloud", () => {
  let rows: CloudModelRow[];
  after(async () => {
    await standIn?.close();
    standIn = undefined;
  });

  it("lists the Stability services ACTIVE with their profiles, Titan and Nova EOL with dates; no other models", async () => {
    await start();
    rows = await listImageEditingModels(aws);
    assert.deepEqual(
      rows.map((r) => [r.status, r.modelId, r.inferenceProfile ?? null, r.endOfLife ?? null]),
      [
        ["ACTIVE", "stability.stable-image-inpaint-v1:0", INPAINT, null],
        ["ACTIVE", "stability.stable-image-search-replace-v1:0", "us.stability.stable-image-search-replace-v1:0", null],
        ["ACTIVE", "stability.stable-image-erase-object-v1:0", "us.stability.stable-image-erase-object-v1:0", null],
        ["ACTIVE", "stability.stable-outpaint-v1:0", "us.stability.stable-outpaint-v1:0", null],
        ["ACTIVE", "stability.stable-image-remove-background-v1:0", "us.stability.stable-image-remove-background-v1:0", null],
        ["EOL", TITAN_V1, null, null],
        ["EOL", TITAN_V2, null, "2026-06-30"],
        ["EOL", NOVA, null, "2026-09-30"],
      ],
    );
    assert.equal(rows.find((r) => r.modelId === NOVA)?.legacyDate, "2026-03-30");
    assert.equal(rows[1]?.maskfleet, "--generator stability --edit search-replace");
    assert.equal(rows[1]?.provider, "Stability AI");
    const table = formatCloudModels(rows, "us-east-1");
    assert.match(table, /^ACTIVE\s+us\.stability\.stable-image-inpaint-v1:0\s/m);
    assert.match(table, /^EOL\s+amazon\.titan-image-generator-v2:0\s.*2026-06-30/m);
  });

  it("a LEGACY model sorts between ACTIVE and EOL", async () => {
    await standIn?.close();
    await start({ catalog: [{ modelId: NOVA, status: "LEGACY", legacyTime: "2026-03-30", endOfLifeTime: "2027-03-31" }] });
    const statuses = (await listImageEditingModels(aws)).map((r) => `${r.status} ${r.modelId}`);
    assert.deepEqual(statuses.slice(4, 7), ["ACTIVE stability.stable-image-remove-background-v1:0", `LEGACY ${NOVA}`, `EOL ${TITAN_V1}`]);
  });

  it("`maskfleet models cloud --json` prints those rows, exit 0", async () => {
    await standIn?.close();
    const s = await start();
    const env = { ...awsEnv, AWS_ENDPOINT_URL_BEDROCK: s.endpoint, AWS_CONFIG_FILE: "/nonexistent", AWS_SHARED_CREDENTIALS_FILE: "/nonexistent" };
    const res = await runMaskfleet(["models", "cloud", "--region", "us-east-1", "--json"], { env });
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(JSON.parse(res.stdout), rows);
    assert.ok(s.requests.every((r) => r.region === "us-east-1" && r.status === 200));
  });

  it("`maskfleet models cloud` denied: one line, no stack trace; the region from AWS_REGION", async () => {
    await standIn?.close();
    const s = await start({ region: "us-west-2", deny: ["ListFoundationModels"] });
    const env = { ...awsEnv, AWS_REGION: "us-west-2", AWS_ENDPOINT_URL_BEDROCK: s.endpoint, AWS_CONFIG_FILE: "/nonexistent", AWS_SHARED_CREDENTIALS_FILE: "/nonexistent" };
    const res = await runMaskfleet(["models", "cloud"], { env });
    assert.equal(res.code, 2, res.stderr);
    const lines = res.stderr.split("\n").filter((l) => l.startsWith("maskfleet:"));
    assert.equal(lines.length, 1, res.stderr);
    assert.match(lines[0] as string, /^maskfleet: aws: cannot list Bedrock models in us-west-2: AccessDeniedException: .*bedrock:ListFoundationModels/);
    assert.doesNotMatch(res.stderr, /^\s+at /m, "no stack trace");
    assert.equal(s.requests[0]?.region, "us-west-2");
  });
});
