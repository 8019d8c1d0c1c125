/**
 * The AWS region as the SDK resolves it, with maskfleet's own setting first: --region flag >
 * MASKFLEET_REGION > config file > AWS_REGION > AWS_DEFAULT_REGION > the profile's region in the
 * shared config (or credentials) file > us-east-1. And the Stability region guard.
 */
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { STABILITY_REGIONS } from "../src/generators/bedrock-models.js";
import { resolveRegion } from "../src/runtime/aws.js";
import { assertStabilityRegion } from "../src/generators/bedrock-models.js";
import { awsSettingsOf, loadConfig } from "../src/config/config.js";
import { ConfigError } from "../src/runtime/errors.js";
import { scratchDir } from "./helpers.js";

interface Row {
  what: string;
  /** --region */
  flag?: string;
  /** --profile */
  profileFlag?: string;
  /** The YAML config file's content. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** AWS_CONFIG_FILE points at the test's shared config file (default true). */
  awsConfig?: boolean;
  expected: string;
}

const rows: Row[] = [
  { what: "nothing set: us-east-1", awsConfig: false, expected: "us-east-1" },
  { what: "the default profile's region", expected: "eu-central-1" },
  { what: "AWS_PROFILE's region", env: { AWS_PROFILE: "other" }, expected: "ap-southeast-2" },
  { what: "--profile's region beats AWS_PROFILE", profileFlag: "other", env: { AWS_PROFILE: "nosuch" }, expected: "ap-southeast-2" },
  { what: "awsProfile from the config file", file: "awsProfile: other\n", expected: "ap-southeast-2" },
  { what: "a profile with no region: us-east-1", env: { AWS_PROFILE: "noregion" }, expected: "us-east-1" },
  { what: "a profile only in the credentials file", env: { AWS_PROFILE: "credonly" }, expected: "sa-east-1" },
  { what: "AWS_DEFAULT_REGION beats the profile", env: { AWS_DEFAULT_REGION: "eu-west-3" }, expected: "eu-west-3" },
  { what: "AWS_REGION beats AWS_DEFAULT_REGION", env: { AWS_REGION: "eu-north-1", AWS_DEFAULT_REGION: "eu-west-3" }, expected: "eu-north-1" },
  { what: "the config file beats AWS_REGION", file: "region: us-west-2\n", env: { AWS_REGION: "eu-north-1" }, expected: "us-west-2" },
  { what: "the old script's YAML has no AWS region key (target_region is the mask target)", file: "target_region: face\n", expected: "eu-central-1" },
  { what: "MASKFLEET_REGION beats the config file", file: "region: us-west-2\n", env: { MASKFLEET_REGION: "ca-central-1", AWS_REGION: "eu-north-1" }, expected: "ca-central-1" },
  {
    what: "the flag beats everything",
    flag: "us-east-2",
    profileFlag: "other",
    file: "region: us-west-2\n",
    env: { MASKFLEET_REGION: "ca-central-1", AWS_REGION: "eu-north-1", AWS_DEFAULT_REGION: "eu-west-3" },
    expected: "us-east-2",
  },
  { what: "an empty AWS_REGION counts as unset", env: { AWS_REGION: "", AWS_DEFAULT_REGION: "eu-west-3" }, expected: "eu-west-3" },
];

describe("AWS region resolution", () => {
  let dir: string;
  let base: NodeJS.ProcessEnv;
  before(async () => {
    dir = await scratchDir("region");
    const awsConfig = join(dir, "aws-config");
    await writeFile(
      awsConfig,
      [
        "# a comment",
        "[default]",
        "region = eu-central-1 ; trailing comment",
        "s3 =",
        "  region = not-this-one",
        "[profile other]",
        "region=ap-southeast-2",
        "[profile noregion]",
        "output = json",
        "[other]",
        "region = not-a-profile-section",
      ].join("\n"),
    );
    const credentials = join(dir, "aws-credentials");
    await writeFile(credentials, "[credonly]\naws_access_key_id = AKIDSTANDIN\naws_secret_access_key = x\nregion = sa-east-1\n");
    // HOME too: no row may read the developer's own ~/.aws.
    base = { HOME: dir, AWS_CONFIG_FILE: awsConfig, AWS_SHARED_CREDENTIALS_FILE: credentials };
  });

  for (const row of rows) {
    it(`${row.what} -> ${row.expected}`, async () => {
      const env: NodeJS.ProcessEnv = { ...base, ...(row.awsConfig === false && { AWS_CONFIG_FILE: join(dir, "missing") }), ...row.env };
      let file: string | undefined;
      if (row.file !== undefined) {
        file = join(dir, `${row.what.replace(/\W+/g, "-")}.yaml`);
        await writeFile(file, row.file);
      }
      const config = loadConfig({ file, env, overrides: { region: row.flag, awsProfile: row.profileFlag } });
      assert.equal(awsSettingsOf(config, env).region, row.expected);
    });
  }

  it("resolveRegion alone: the same order, the profile given or from AWS_PROFILE", () => {
    assert.equal(resolveRegion({ env: base }), "eu-central-1");
    assert.equal(resolveRegion({ profile: "other", env: base }), "ap-southeast-2");
    assert.equal(resolveRegion({ env: { ...base, AWS_PROFILE: "other" } }), "ap-southeast-2");
    assert.equal(resolveRegion({ region: "us-west-1", env: { ...base, AWS_REGION: "eu-north-1" } }), "us-west-1");
    assert.equal(resolveRegion({ env: { HOME: dir } }), "us-east-1", "no ~/.aws under HOME");
  });

  it("a `~/` AWS_CONFIG_FILE is under HOME", async () => {
    await writeFile(join(dir, "home-config"), "[default]\nregion = me-south-1\n");
    assert.equal(resolveRegion({ env: { HOME: dir, AWS_CONFIG_FILE: "~/home-config" } }), "me-south-1");
  });
});

describe("assertStabilityRegion", () => {
  it("accepts the Stability regions", () => {
    for (const region of ["us-west-2", ...STABILITY_REGIONS]) assert.doesNotThrow(() => assertStabilityRegion(region));
  });

  it("refuses eu-west-1 in one line naming the three regions", () => {
    assert.throws(
      () => assertStabilityRegion("eu-west-1"),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.key, "region");
        assert.ok(!e.message.includes("\n"), e.message);
        for (const r of ["us-east-1", "us-east-2", "us-west-2", "eu-west-1"]) assert.ok(e.message.includes(r), `${r} in: ${e.message}`);
        return true;
      },
    );
  });
});
