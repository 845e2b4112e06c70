import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseArn, validate } from "../../../src/providers/aws-lambda-microvm/validate.ts";
import type { CommandName } from "../../../src/providers/provider.ts";
import { failure, type Sandbox, sandbox } from "./harness.ts";

let box: Sandbox;
beforeAll(() => {
  box = sandbox();
});
afterAll(() => {
  box.cleanup();
});

const IMAGE = "arn:aws:lambda:eu-west-1:123456789012:microvm-image:crabbox-runner";

async function check(flags: Record<string, unknown>, command: CommandName = "run") {
  const config = await box.resolve({ flags: { "aws-lambda-microvm-image": IMAGE, ...flags } });
  return validate(config, command);
}

async function rejected(flags: Record<string, unknown>, command: CommandName = "run") {
  return failure(check(flags, command));
}

test("a complete, valid config passes", async () => {
  await check({
    "aws-lambda-microvm-execution-role-arn": "arn:aws:iam::123456789012:role/MicrovmRuntime",
    "aws-lambda-microvm-workdir": "/work/project",
    "aws-lambda-microvm-ingress-connectors": "arn:aws:lambda:eu-west-1:123456789012:network-connector:a",
    "idle-timeout": "60s",
    "aws-lambda-microvm-endpoint": "http://127.0.0.1:4010",
  });
});

describe("upstream §1.7 rules, in order, with upstream's messages", () => {
  test("region pattern (checked first, before the image)", async () => {
    const error = await failure(
      box.resolve({ flags: { "aws-lambda-microvm-region": "Europe" } }).then((c) => validate(c, "run")),
    );
    expect([error.exitCode, error.message]).toEqual([2, 'invalid AWS Lambda MicroVM region "Europe"']);
    await check({
      "aws-lambda-microvm-region": "us-gov-west-1",
      "aws-lambda-microvm-image": IMAGE.replace("eu-west-1", "us-gov-west-1"),
    });
  });

  for (const command of ["run", "warmup", "doctor"] as const) {
    test(`the image is required by ${command}: exit 3 naming the env var and flag`, async () => {
      const config = await box.resolve();
      const error = await failure(() => validate(config, command));
      expect(error.exitCode).toBe(3);
      expect(error.message).toBe(
        "AWS Lambda MicroVM image is required; set CRABBOX_AWS_LAMBDA_MICROVM_IMAGE or --aws-lambda-microvm-image",
      );
    });
  }

  for (const command of ["stop", "status", "list", "pause", "resume", "cleanup"] as const) {
    test(`${command} works without an image`, async () => {
      const config = await box.resolve();
      expect(() => validate(config, command)).not.toThrow();
    });
  }

  test.each([
    ["not an ARN", "crabbox-runner"],
    ["another service", "arn:aws:s3:eu-west-1:123456789012:microvm-image:x"],
    ["another region", "arn:aws:lambda:us-east-1:123456789012:microvm-image:x"],
    ["another resource", "arn:aws:lambda:eu-west-1:123456789012:function:x"],
    ["too few parts", "arn:aws:lambda:eu-west-1:microvm-image"],
  ])("image ARN: %s", async (_name, image) => {
    const error = await rejected({ "aws-lambda-microvm-image": image }, "status");
    expect([error.exitCode, error.message]).toEqual([
      2,
      "invalid AWS Lambda MicroVM image ARN for region eu-west-1",
    ]);
  });

  test.each([
    ["not an ARN", "MicrovmRuntime"],
    ["not iam", "arn:aws:lambda:eu-west-1:123456789012:role/x"],
    ["not a role", "arn:aws:iam::123456789012:user/x"],
  ])("execution role: %s", async (_name, role) => {
    const error = await rejected({ "aws-lambda-microvm-execution-role-arn": role });
    expect([error.exitCode, error.message]).toEqual([2, "invalid AWS Lambda MicroVM execution role ARN"]);
  });

  test.each(["relative/dir", "/a/../b", "/a//b", "/a/b/", "/a/./b", "/a\u0000b"])(
    "workdir %p is not clean",
    async (workdir) => {
      const error = await rejected({ "aws-lambda-microvm-workdir": workdir });
      expect([error.exitCode, error.message]).toEqual([
        2,
        "aws-lambda-microvm workdir must be a clean absolute path below /",
      ]);
    },
  );

  test.each(["/", "/tmp", "/workspace", "/work", "/home", "/usr"])(
    "workdir %p is too broad",
    async (workdir) => {
      const error = await rejected({ "aws-lambda-microvm-workdir": workdir });
      expect([error.exitCode, error.message]).toEqual([
        2,
        `aws-lambda-microvm workdir "${workdir}" is too broad; choose a dedicated subdirectory`,
      ]);
    },
  );

  test("workdir subdirectories are fine", async () => {
    await check({ "aws-lambda-microvm-workdir": "/workspace/crabbox" });
    await check({ "aws-lambda-microvm-workdir": "/work/project" });
  });

  test("idle timeout below 60s; exactly 60s is fine", async () => {
    const error = await rejected({ "idle-timeout": "59s" });
    expect([error.exitCode, error.message]).toEqual([
      2,
      "aws-lambda-microvm idle timeout must be at least 60s",
    ]);
    await check({ "idle-timeout": "1m" });
  });

  test.each([
    ["ingress", "arn:aws:lambda:us-east-1:123456789012:network-connector:a"],
    ["egress", "arn:aws:lambda:eu-west-1:123456789012:function:a"],
  ])("%s connector outside the region or not a connector", async (direction, arn) => {
    const error = await rejected({ [`aws-lambda-microvm-${direction}-connectors`]: arn });
    expect([error.exitCode, error.message]).toEqual([
      2,
      `invalid AWS Lambda MicroVM ${direction} connector: expected Lambda network-connector ARN in region eu-west-1`,
    ]);
  });

  test("the first failure wins: a bad role is reported before a bad workdir", async () => {
    const error = await rejected({
      "aws-lambda-microvm-execution-role-arn": "x",
      "aws-lambda-microvm-workdir": "/",
    });
    expect(error.message).toBe("invalid AWS Lambda MicroVM execution role ARN");
  });

  test.each([
    ["plain http off loopback", "http://example.com"],
    ["not a URL", "127.0.0.1:4010"],
    ["credentials in the URL", "https://user:pw@example.com"],
  ])("endpoint: %s", async (_name, endpoint) => {
    const error = await rejected({ "aws-lambda-microvm-endpoint": endpoint });
    expect(error.exitCode).toBe(2);
    expect(error.message).toStartWith(`invalid AWS Lambda MicroVM endpoint "${endpoint}"`);
  });
});

test("parseArn splits into at most six parts, like Go's arn.Parse", () => {
  expect(parseArn("arn:aws:lambda:eu-west-1:123:microvm-image:name:with:colons")).toEqual({
    partition: "aws",
    service: "lambda",
    region: "eu-west-1",
    account: "123",
    resource: "microvm-image:name:with:colons",
  });
  expect(parseArn("arn:aws:iam::123:role/x")?.region).toBe("");
  expect(parseArn("nope")).toBeUndefined();
});
