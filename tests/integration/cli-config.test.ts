import { afterEach, beforeAll, beforeEach, expect, test } from "bun:test";
import { join } from "node:path";
import { type Home, home, requireBinary } from "./cli-harness.ts";

let h: Home;
beforeAll(requireBinary);
beforeEach(() => {
  h = home();
});
afterEach(() => h.cleanup());

test("config show --json: every value with its source, each layer over the lower ones", async () => {
  h.write(
    h.userFile,
    "provider: aws-lambda-microvm\nttl: 2h\nawsLambdaMicroVM:\n  workdir: /work/user\n  imageVersion: '1'\n",
  );
  h.write(join(h.repo, "crabbox.yaml"), "awsLambdaMicroVM:\n  workdir: /work/repo\n  imageVersion: '2'\n");
  h.write(join(h.repo, ".crabbox.yaml"), "idleTimeout: 10m\n");
  const { code, stdout, stderr } = await h.run(
    ["config", "show", "--json", "--aws-lambda-microvm-image-version", "4"],
    { env: { CRABBOX_AWS_LAMBDA_MICROVM_IMAGE_VERSION: "3", AWS_REGION: "us-west-2" } },
  );
  expect(stderr).toBe("");
  expect(code).toBe(0);
  const shown = JSON.parse(stdout);
  expect(shown.provider).toBe("aws-lambda-microvm");
  expect(shown.aws.region).toBe("us-west-2");
  expect(shown.ttl).toBe("2h0m0s");
  expect(shown.idleTimeout).toBe("10m0s");
  expect(shown.awsLambdaMicroVM.workdir).toBe("/work/repo");
  expect(shown.awsLambdaMicroVM.imageVersion).toBe("4");
  expect(shown.awsLambdaMicroVM.image).toBeNull();
  expect(shown.sources).toMatchObject({
    provider: { source: "user", origin: h.userFile },
    "aws.region": { source: "env", origin: "AWS_REGION" },
    ttl: { source: "user" },
    idleTimeout: { source: "repo", origin: join(h.repo, ".crabbox.yaml") },
    "awsLambdaMicroVM.workdir": { source: "repo", origin: join(h.repo, "crabbox.yaml") },
    "awsLambdaMicroVM.imageVersion": { source: "flag", origin: "--aws-lambda-microvm-image-version" },
    "env.allow": { source: "default" },
  });
  expect(shown.files.map((file: { layer: string; found: boolean }) => [file.layer, file.found])).toEqual([
    ["user", true],
    ["repo", true],
    ["repo", true],
  ]);
});

test("`crabbox config` alone is `config show`; text names each source", async () => {
  const { code, stdout } = await h.run(["config"], { env: { CRABBOX_TTL: "45m" } });
  expect(code).toBe(0);
  expect(stdout).toStartWith(
    "aws_lambda_microvm image=- image_version=latest workdir=/workspace/crabbox forget_missing=false\n",
  );
  expect(stdout).toMatch(/\nttl\s+45m0s\s+env \(CRABBOX_TTL\)\n/);
  expect(stdout).toMatch(/\naws\.region\s+eu-west-1\s+default\n/);
  const json = await h.run(["config", "--json"]);
  expect(JSON.parse(json.stdout).aws.region).toBe("eu-west-1");
});

test("a repository file setting the endpoint is exit 2, whatever the command", async () => {
  const path = h.write(
    join(h.repo, "crabbox.yaml"),
    "awsLambdaMicroVM:\n  endpoint: https://collector.example\n",
  );
  for (const args of [
    ["config", "show"],
    ["list", "--provider", "aws-lambda-microvm"],
  ]) {
    const { code, stderr } = await h.run(args);
    expect(code).toBe(2);
    expect(stderr).toContain(
      `error: config ${path} sets awsLambdaMicroVM.endpoint, which a repository's config may not set`,
    );
    expect(stderr).toContain("hint: set it in your user config");
  }
});

test("a repository file setting env.allow, or any file holding a credential, is exit 2", async () => {
  h.write(join(h.repo, ".crabbox.yaml"), "env:\n  allow: [GITHUB_TOKEN]\n");
  expect((await h.run(["config", "show"])).code).toBe(2);
  h.write(join(h.repo, ".crabbox.yaml"), "");
  h.write(h.userFile, "aws:\n  secretAccessKey: abc\n");
  const { code, stderr } = await h.run(["config", "show"]);
  expect(code).toBe(2);
  expect(stderr).toContain("sets aws.secretAccessKey: credentials never belong in crabbox config");
});

test("unknown keys warn with a suggestion on stderr and do not fail", async () => {
  h.write(h.userFile, "provder: aws-lambda-microvm\nhetzner:\n  location: fsn1\n");
  const { code, stderr, stdout } = await h.run(["config", "show", "--json"]);
  expect(code).toBe(0);
  expect(JSON.parse(stdout).provider).toBeNull();
  expect(stderr).toContain(
    `warning: ignoring unknown config key provder in ${h.userFile} (did you mean provider?)`,
  );
  expect(stderr).toContain("warning: ignoring unknown config key hetzner");
});

test("a bad duration anywhere is exit 2", async () => {
  for (const [args, env] of [
    [["config", "show"], { CRABBOX_IDLE_TIMEOUT: "half an hour" }],
    [["run", "--provider", "aws-lambda-microvm", "--ttl", "90", "--", "true"], {}],
  ] as const) {
    const { code, stderr } = await h.run([...args], { env: { ...env } });
    expect(code).toBe(2);
    expect(stderr).toContain("error: invalid duration");
    expect(stderr).toContain("hint: use a number with a unit, e.g. 90m, 1h30m or 45s");
  }
});

test("CRABBOX_CONFIG reads exactly that file", async () => {
  h.write(h.userFile, "ttl: 2h\n");
  const ci = h.write(join(h.root, "ci.yaml"), "ttl: 3h\n");
  const { stdout } = await h.run(["config", "show", "--json"], { env: { CRABBOX_CONFIG: ci } });
  const shown = JSON.parse(stdout);
  expect(shown.ttl).toBe("3h0m0s");
  expect(shown.files).toEqual([{ path: ci, layer: "user", found: true }]);
});
