import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { CONFIG_KEY_NAMES, CONFIG_KEYS, type ConfigKey, type KeyDef } from "../../../src/config/keys.ts";
import { configValue } from "../../../src/config/resolve.ts";
import { failure, type Sandbox, sandbox } from "./harness.ts";

let box: Sandbox;
beforeEach(() => {
  box = sandbox();
});
afterEach(() => {
  box.cleanup();
});

/** For every key: what each layer sets (raw), and the typed value it must resolve to. */
interface LayerValue {
  raw: unknown;
  value: unknown;
}
const layerValues: Record<ConfigKey, Partial<Record<"user" | "repo" | "env" | "flag", LayerValue>>> = {
  provider: {
    user: { raw: "p-user", value: "p-user" },
    repo: { raw: "p-repo", value: "p-repo" },
    env: { raw: "p-env", value: "p-env" },
    flag: { raw: "P-Flag", value: "p-flag" },
  },
  "aws.region": {
    user: { raw: "us-east-1", value: "us-east-1" },
    repo: { raw: "us-east-2", value: "us-east-2" },
    env: { raw: "us-west-2", value: "us-west-2" },
    flag: { raw: "ap-northeast-1", value: "ap-northeast-1" },
  },
  "awsLambdaMicroVM.image": str("image"),
  "awsLambdaMicroVM.imageVersion": str("version"),
  "awsLambdaMicroVM.executionRoleArn": str("role"),
  "awsLambdaMicroVM.workdir": str("/w"),
  "awsLambdaMicroVM.ingressConnectors": list(),
  "awsLambdaMicroVM.egressConnectors": list(),
  "awsLambdaMicroVM.forgetMissing": {
    user: { raw: true, value: true },
    repo: { raw: false, value: false },
    env: { raw: "yes", value: true },
    flag: { raw: false, value: false },
  },
  "awsLambdaMicroVM.endpoint": {
    user: { raw: "https://user.example", value: "https://user.example" },
    env: { raw: "https://env.example", value: "https://env.example" },
    flag: { raw: "http://127.0.0.1:1", value: "http://127.0.0.1:1" },
  },
  ttl: dur(),
  idleTimeout: dur(),
  "sync.exclude": { user: { raw: ["u"], value: ["u"] }, repo: { raw: ["r", "r2"], value: ["r", "r2"] } },
  "sync.include": { user: { raw: ["u"], value: ["u"] }, repo: { raw: [], value: [] } },
  "sync.keep": {
    user: { raw: [".venv"], value: [".venv"] },
    repo: { raw: ["node_modules", "target"], value: ["node_modules", "target"] },
  },
  "sync.warnFiles": num(),
  "sync.warnBytes": num(),
  "sync.failFiles": num(),
  "sync.failBytes": num(),
  "sync.allowLarge": {
    user: { raw: true, value: true },
    repo: { raw: false, value: false },
    env: { raw: "1", value: true },
    flag: { raw: false, value: false },
  },
  "sync.compression": {
    user: { raw: "gzip", value: "gzip" },
    repo: { raw: "zstd:9", value: "zstd:9" },
    env: { raw: "none", value: "none" },
  },
  "env.allow": {
    user: { raw: ["USER_VAR"], value: ["USER_VAR"] },
    env: { raw: "ENV_A, ENV_B", value: ["ENV_A", "ENV_B"] },
    flag: { raw: ["FLAG_A", "ENV_A"], value: ["ENV_A", "ENV_B", "FLAG_A"] },
  },
};

function str(prefix: string) {
  return {
    user: { raw: `${prefix}/user`, value: `${prefix}/user` },
    repo: { raw: ` ${prefix}/repo `, value: `${prefix}/repo` },
    env: { raw: `${prefix}/env`, value: `${prefix}/env` },
    flag: { raw: `${prefix}/flag`, value: `${prefix}/flag` },
  };
}
function list() {
  return {
    user: { raw: ["u1"], value: ["u1"] },
    repo: { raw: ["r1", "r2"], value: ["r1", "r2"] },
    env: { raw: "e1, e2,,", value: ["e1", "e2"] },
    flag: { raw: "f1", value: ["f1"] },
  };
}
function dur() {
  return {
    user: { raw: "90s", value: 90_000 },
    repo: { raw: "2m", value: 120_000 },
    env: { raw: "1h30m", value: 5_400_000 },
    flag: { raw: "4h", value: 14_400_000 },
  };
}
function num() {
  return {
    user: { raw: 1, value: 1 },
    repo: { raw: 2, value: 2 },
    env: { raw: "3", value: 3 },
  };
}

function fileShape(key: ConfigKey, raw: unknown): Record<string, unknown> {
  const [section, name] = key.split(".") as [string, string | undefined];
  return name === undefined ? { [section]: raw } : { [section]: { [name]: raw } };
}

describe("each layer wins over the lower ones, for every key", () => {
  test("the table covers every key", () => {
    expect(Object.keys(layerValues).sort()).toEqual([...CONFIG_KEY_NAMES].sort());
  });

  for (const key of CONFIG_KEY_NAMES) {
    test(key, async () => {
      const def: KeyDef = CONFIG_KEYS[key];
      const layers = layerValues[key];
      const defaults = await box.resolve();
      expect(configValue(defaults, key) as unknown).toEqual(def.default);
      expect(defaults.sources[key].source).toBe("default");

      const env: Record<string, string> = {};
      const flags: Record<string, unknown> = {};
      const steps: ["user" | "repo" | "env" | "flag", () => void][] = [
        ["user", () => box.write(box.userFile, fileShape(key, layers.user?.raw))],
        ["repo", () => box.write(join(box.repo, "crabbox.yaml"), fileShape(key, layers.repo?.raw))],
        ["env", () => (env[def.env?.[0] as string] = String(layers.env?.raw))],
        ["flag", () => (flags[def.flag as string] = layers.flag?.raw)],
      ];
      for (const [layer, apply] of steps) {
        const expected = layers[layer];
        if (!expected) continue;
        apply();
        const config = await box.resolve({ env, flags });
        expect({ layer, value: configValue(config, key) as unknown }).toEqual({
          layer,
          value: expected.value,
        });
        expect(config.sources[key].source).toBe(layer);
      }
      expect(box.warnings).toEqual([]);
    });
  }
});

describe("files", () => {
  test("crabbox.yaml then .crabbox.yaml at the repo root, read from a subdirectory", async () => {
    box.write(join(box.repo, "crabbox.yaml"), "ttl: 1h\nidleTimeout: 5m\n");
    box.write(join(box.repo, ".crabbox.yaml"), "ttl: 2h\n");
    const config = await box.resolve();
    expect(config.ttl).toBe(7_200_000);
    expect(config.idleTimeout).toBe(300_000);
    expect(config.sources.ttl).toEqual({ source: "repo", origin: join(box.repo, ".crabbox.yaml") });
    expect(config.repoRoot).toBe(box.repo);
  });

  test("CRABBOX_AWS_REGION beats AWS_REGION; both beat files", async () => {
    box.write(join(box.repo, "crabbox.yaml"), { aws: { region: "us-east-1" } });
    expect((await box.resolve({ env: { AWS_REGION: "us-east-2" } })).aws.region).toBe("us-east-2");
    const both = await box.resolve({ env: { AWS_REGION: "us-east-2", CRABBOX_AWS_REGION: "us-west-2" } });
    expect(both.aws.region).toBe("us-west-2");
    expect(both.sources["aws.region"]).toEqual({ source: "env", origin: "CRABBOX_AWS_REGION" });
  });

  test("CRABBOX_CONFIG replaces the search", async () => {
    box.write(box.userFile, "ttl: 1h\n");
    box.write(join(box.repo, "crabbox.yaml"), "idleTimeout: 5m\n");
    const only = box.write(join(box.root, "ci.yaml"), "provider: aws-lambda-microvm\n");
    const config = await box.resolve({ env: { CRABBOX_CONFIG: only } });
    expect(config.provider).toBe("aws-lambda-microvm");
    expect(config.ttl).toBe(90 * 60_000);
    expect(config.idleTimeout).toBe(30 * 60_000);
    expect(config.files).toEqual([{ path: only, layer: "user", found: true }]);
  });

  test("a CRABBOX_CONFIG file inside the repository keeps repository trust", async () => {
    const inside = box.write(join(box.repo, "ci", "crabbox.yaml"), {
      awsLambdaMicroVM: { endpoint: "https://x" },
    });
    const error = await failure(box.resolve({ env: { CRABBOX_CONFIG: "../../ci/crabbox.yaml" } }));
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain(inside);
  });

  test("a missing CRABBOX_CONFIG file is exit 2", async () => {
    const error = await failure(box.resolve({ env: { CRABBOX_CONFIG: join(box.root, "nope.yaml") } }));
    expect(error.exitCode).toBe(2);
    expect(error.message).toBe(`read config ${join(box.root, "nope.yaml")}: no such file`);
  });

  test("empty files are ignored; missing files are skipped", async () => {
    box.write(box.userFile, "\n# nothing here\n");
    const config = await box.resolve();
    expect(config.sources.ttl.source).toBe("default");
    expect(config.files.map((file) => file.found)).toEqual([true, false, false]);
  });

  test("only the YAML files count: no rc, package.json key, dotenv, extends or code config", async () => {
    const marker = join(box.root, "executed");
    box.write(
      join(box.repo, "crabbox.config.ts"),
      `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "x"); export default { provider: "from-ts" };`,
    );
    box.write(join(box.repo, ".crabboxrc"), "provider=from-rc\n");
    box.write(join(box.repo, "package.json"), { name: "x", crabbox: { provider: "from-package" } });
    box.write(join(box.repo, ".env"), "CRABBOX_PROVIDER=from-dotenv\n");
    box.write(join(box.repo, "crabbox.yaml"), { extends: ["./base.yaml"], ttl: "1h" });
    box.write(join(box.repo, "base.yaml"), "provider: from-extends\n");
    const config = await box.resolve();
    expect(config.provider).toBeUndefined();
    expect(config.ttl).toBe(3_600_000);
    expect(existsSync(marker)).toBe(false);
    expect(box.warnings).toEqual([
      `ignoring unknown config key extends in ${join(box.repo, "crabbox.yaml")}`,
    ]);
  });

  test("the resolved config is immutable", async () => {
    const config = await box.resolve();
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.awsLambdaMicroVM.ingressConnectors)).toBe(true);
  });
});

describe("unknown keys warn with a suggestion and never fail", () => {
  test("typos and other providers' keys", async () => {
    box.write(box.userFile, {
      awsLambdaMicroVM: { imge: "x" },
      sync: { excludes: ["a"] },
      hetzner: { serverType: "cx22" },
      tll: "1h",
    });
    await box.resolve();
    expect(box.warnings).toEqual([
      `ignoring unknown config key awsLambdaMicroVM.imge in ${box.userFile} (did you mean awsLambdaMicroVM.image?)`,
      `ignoring unknown config key sync.excludes in ${box.userFile} (did you mean sync.exclude?)`,
      `ignoring unknown config key hetzner in ${box.userFile}`,
      `ignoring unknown config key tll in ${box.userFile} (did you mean ttl?)`,
    ]);
  });
});

describe("repository files may not redirect the checkout or forward secrets", () => {
  for (const [key, content] of [
    ["awsLambdaMicroVM.endpoint", { awsLambdaMicroVM: { endpoint: "https://evil.example" } }],
    ["env.allow", { env: { allow: ["AWS_SECRET_ACCESS_KEY"] } }],
  ] as const) {
    for (const name of ["crabbox.yaml", ".crabbox.yaml"]) {
      test(`${key} in ${name} is exit 2 naming the key and where it may be set`, async () => {
        const path = box.write(join(box.repo, name), content);
        const error = await failure(box.resolve());
        expect(error.exitCode).toBe(2);
        expect(error.message).toStartWith(
          `config ${path} sets ${key}, which a repository's config may not set`,
        );
        expect(error.hint).toContain(box.userFile);
        expect(error.hint).toContain(
          key === "env.allow" ? "CRABBOX_ENV_ALLOW" : "CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT",
        );
        expect(error.hint).toContain(key === "env.allow" ? "--allow-env" : "--aws-lambda-microvm-endpoint");
      });
    }
  }

  test("the user file may set both", async () => {
    box.write(box.userFile, {
      awsLambdaMicroVM: { endpoint: "https://emu.example" },
      env: { allow: ["MY_*"] },
    });
    const config = await box.resolve();
    expect(config.awsLambdaMicroVM.endpoint).toBe("https://emu.example");
    expect(config.env.allow).toEqual(["MY_*"]);
  });
});

describe("credential-looking keys anywhere are exit 2", () => {
  for (const [where, content, path] of [
    ["repo", { aws: { accessKeyId: "AKIA" } }, "aws.accessKeyId"],
    ["repo", { aws: { secretAccessKey: "s" } }, "aws.secretAccessKey"],
    ["user", { awsLambdaMicroVM: { sessionToken: "t" } }, "awsLambdaMicroVM.sessionToken"],
    ["user", { hetzner: { token: "t" } }, "hetzner.token"],
    ["user", { profiles: [{ aws_secret_access_key: "s" }] }, "profiles.aws_secret_access_key"],
  ] as const) {
    test(`${path} in the ${where} file`, async () => {
      const file = box.write(where === "user" ? box.userFile : join(box.repo, "crabbox.yaml"), content);
      const error = await failure(box.resolve());
      expect(error.exitCode).toBe(2);
      expect(error.message).toBe(`config ${file} sets ${path}: credentials never belong in crabbox config`);
      expect(error.hint).toContain("AWS SDK");
    });
  }
});

describe("malformed values are exit 2, never silently ignored", () => {
  test.each([
    ["file duration", { files: { ttl: "5 minutes" } }, 'invalid duration "5 minutes" for ttl in'],
    ["file duration without unit", { files: { idleTimeout: 90 } }, "invalid duration 90 for idleTimeout in"],
    ["env duration", { env: { CRABBOX_TTL: "forever" } }, 'invalid duration "forever" for CRABBOX_TTL'],
    ["flag duration", { flags: { "idle-timeout": "10" } }, 'invalid duration "10" for --idle-timeout'],
    [
      "env boolean",
      { env: { CRABBOX_AWS_LAMBDA_MICROVM_FORGET_MISSING: "maybe" } },
      "CRABBOX_AWS_LAMBDA_MICROVM_FORGET_MISSING must be true or false",
    ],
    [
      "env count",
      { env: { CRABBOX_SYNC_FAIL_FILES: "lots" } },
      "CRABBOX_SYNC_FAIL_FILES must be a whole number",
    ],
    [
      "numeric version",
      { files: { awsLambdaMicroVM: { imageVersion: 1.0 } } },
      "awsLambdaMicroVM.imageVersion must be a string",
    ],
    [
      "list as string",
      { files: { awsLambdaMicroVM: { ingressConnectors: "a,b" } } },
      "awsLambdaMicroVM.ingressConnectors must be a list of strings",
    ],
    ["section as scalar", { files: { aws: "eu-west-1" } }, "aws must be a mapping of keys"],
    ["negative count", { files: { sync: { warnFiles: -1 } } }, "sync.warnFiles must be a whole number"],
  ] as const)("%s", async (_name, input, message) => {
    const setup = input as { files?: unknown; env?: Record<string, string>; flags?: Record<string, unknown> };
    if (setup.files) box.write(box.userFile, setup.files);
    const error = await failure(box.resolve({ env: setup.env, flags: setup.flags }));
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain(message);
  });

  test("invalid YAML is exit 2 naming the file", async () => {
    const path = box.write(join(box.repo, "crabbox.yaml"), "ttl: [1h\n");
    const error = await failure(box.resolve());
    expect(error.exitCode).toBe(2);
    expect(error.message).toStartWith(`parse config ${path}:`);
  });

  test("a top level that is not a mapping is exit 2", async () => {
    const path = box.write(box.userFile, "- a\n- b\n");
    const error = await failure(box.resolve());
    expect(error.message).toBe(`parse config ${path}: the top level must be a mapping of keys (key: value)`);
  });

  test("a directory where the config file is expected is exit 2 (fails for root too)", async () => {
    mkdirSync(join(box.repo, "crabbox.yaml"));
    const error = await failure(box.resolve());
    expect(error.exitCode).toBe(2);
    expect(error.message).toStartWith(`read config ${join(box.repo, "crabbox.yaml")}:`);
  });

  test("an empty string flag clears a string value; an empty list flag selects the managed default", async () => {
    box.write(box.userFile, { awsLambdaMicroVM: { imageVersion: "3", ingressConnectors: ["a"] } });
    const config = await box.resolve({
      flags: { "aws-lambda-microvm-image-version": "", "aws-lambda-microvm-ingress-connectors": "" },
    });
    expect(config.awsLambdaMicroVM.imageVersion).toBeUndefined();
    expect(config.awsLambdaMicroVM.ingressConnectors).toEqual([]);
    expect(config.sources["awsLambdaMicroVM.imageVersion"].source).toBe("flag");
  });

  test("an empty env.allow list in a file keeps the default (it would silently stop forwarding CI)", async () => {
    box.write(box.userFile, { env: { allow: [] } });
    expect((await box.resolve()).env.allow).toEqual(["CI", "NODE_OPTIONS"]);
  });
});

test("upstream's config test: YAML parsed, then env overrides it", async () => {
  box.write(box.userFile, {
    awsLambdaMicroVM: {
      image: "arn:aws:lambda:eu-west-1:123456789012:microvm-image:crabbox-runner",
      imageVersion: "2",
      executionRoleArn: "arn:aws:iam::123456789012:role/MicrovmRuntime",
      workdir: "/work/app",
      ingressConnectors: ["arn:aws:lambda:eu-west-1:123456789012:network-connector:in"],
      egressConnectors: ["arn:aws:lambda:eu-west-1:123456789012:network-connector:out"],
      forgetMissing: true,
    },
  });
  const yaml = await box.resolve();
  expect(yaml.awsLambdaMicroVM.imageVersion).toBe("2");
  expect(yaml.awsLambdaMicroVM.forgetMissing).toBe(true);
  const env = await box.resolve({
    env: {
      CRABBOX_AWS_LAMBDA_MICROVM_IMAGE_VERSION: "3",
      CRABBOX_AWS_LAMBDA_MICROVM_WORKDIR: "/work/env",
      CRABBOX_AWS_LAMBDA_MICROVM_INGRESS_CONNECTORS: "ingress-a, ingress-b",
      CRABBOX_AWS_LAMBDA_MICROVM_EGRESS_CONNECTORS: "egress-a",
      CRABBOX_AWS_LAMBDA_MICROVM_FORGET_MISSING: "false",
    },
  });
  expect(env.awsLambdaMicroVM).toMatchObject({
    imageVersion: "3",
    workdir: "/work/env",
    ingressConnectors: ["ingress-a", "ingress-b"],
    egressConnectors: ["egress-a"],
    forgetMissing: false,
  });
});
