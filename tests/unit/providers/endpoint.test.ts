import { describe, expect, test } from "bun:test";
import { CrabboxError, ExitCode } from "../../../src/core/errors.ts";
import {
  dataPlaneTarget,
  isLoopbackHostname,
  parseControlPlaneEndpoint,
  resolveControlPlaneEndpoint,
  validateDataPlaneEndpoint,
} from "../../../src/providers/aws-lambda-microvm/endpoint.ts";

function errorOf(fn: () => unknown): CrabboxError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CrabboxError);
    return error as CrabboxError;
  }
  throw new Error("expected an error");
}

const HOST = "abc123.lambda-microvm.eu-west-1.on.aws";

describe("resolveControlPlaneEndpoint", () => {
  const all = {
    flag: "http://127.0.0.1:1",
    env: {
      CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: "http://127.0.0.1:2",
      AWS_ENDPOINT_URL_LAMBDA_MICROVMS: "http://127.0.0.1:3",
      AWS_ENDPOINT_URL: "http://127.0.0.1:4",
    },
    userConfig: "http://127.0.0.1:5",
  };

  test("precedence: flag, CRABBOX_, AWS_ENDPOINT_URL_LAMBDA_MICROVMS, AWS_ENDPOINT_URL, user config", () => {
    expect(resolveControlPlaneEndpoint(all)).toEqual({
      url: "http://127.0.0.1:1",
      source: "flag",
      emulator: true,
    });
    expect(resolveControlPlaneEndpoint({ ...all, flag: undefined })?.source).toBe(
      "CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT",
    );
    const { CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: _a, ...env2 } = all.env;
    expect(resolveControlPlaneEndpoint({ env: env2, userConfig: all.userConfig })?.url).toBe(
      "http://127.0.0.1:3",
    );
    const { AWS_ENDPOINT_URL_LAMBDA_MICROVMS: _b, ...env3 } = env2;
    expect(resolveControlPlaneEndpoint({ env: env3, userConfig: all.userConfig })?.source).toBe(
      "AWS_ENDPOINT_URL",
    );
    expect(resolveControlPlaneEndpoint({ env: {}, userConfig: all.userConfig })?.source).toBe("user-config");
    expect(resolveControlPlaneEndpoint({ env: {} })).toBeUndefined();
  });

  test("empty values count as unset", () => {
    expect(
      resolveControlPlaneEndpoint({ flag: " ", env: { AWS_ENDPOINT_URL: "" }, userConfig: "" }),
    ).toBeUndefined();
  });

  test("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true skips only the AWS_* variables", () => {
    const env = {
      ...all.env,
      CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: "",
      AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: "true",
    };
    expect(resolveControlPlaneEndpoint({ env, userConfig: all.userConfig })?.source).toBe("user-config");
  });

  test("a real https endpoint is not emulator mode", () => {
    expect(parseControlPlaneEndpoint("https://lambda.eu-west-1.amazonaws.com/", "flag")).toEqual({
      url: "https://lambda.eu-west-1.amazonaws.com",
      source: "flag",
      emulator: false,
    });
  });

  test("https to loopback is emulator mode too", () => {
    expect(parseControlPlaneEndpoint("https://localhost:4599", "flag").emulator).toBe(true);
  });

  test("plain http to anything but loopback is refused (signed requests in clear)", () => {
    const error = errorOf(() => parseControlPlaneEndpoint("http://lambda.example.com", "AWS_ENDPOINT_URL"));
    expect(error.exitCode).toBe(ExitCode.usage);
    expect(error.message).toContain("AWS_ENDPOINT_URL");
    expect(errorOf(() => parseControlPlaneEndpoint("http://127.0.0.1.nip.io:4599", "flag")).exitCode).toBe(
      ExitCode.usage,
    );
  });

  test("garbage, other schemes, credentials, paths and queries are refused", () => {
    for (const raw of [
      "not a url",
      "ftp://127.0.0.1",
      "http://user:pw@127.0.0.1:1",
      "http://127.0.0.1:1/prefix",
      "http://127.0.0.1:1?x=1",
      "http://127.0.0.1:1#f",
    ]) {
      expect(errorOf(() => parseControlPlaneEndpoint(raw, "flag")).exitCode).toBe(ExitCode.usage);
    }
  });
});

describe("isLoopbackHostname", () => {
  test("accepts 127.0.0.0/8, ::1 and localhost literally", () => {
    for (const host of ["127.0.0.1", "127.255.255.254", "127.0.0.0", "[::1]", "localhost", "LOCALHOST"]) {
      expect(isLoopbackHostname(host)).toBe(true);
    }
  });

  test("rejects look-alikes without resolving anything", () => {
    for (const host of [
      "127.0.0.1.nip.io",
      "localhost.evil.com",
      "evil-localhost",
      "128.0.0.1",
      "10.0.0.1",
      "0.0.0.0",
      "[::ffff:7f00:1]",
      "[::2]",
      "127.0.0.256",
      "127.0.0",
      "127.00.0.1",
      "localhost.",
      "",
    ]) {
      expect(isLoopbackHostname(host)).toBe(false);
    }
  });

  test("URL parsing normalises shorthand before the check", () => {
    expect(parseControlPlaneEndpoint("http://127.1:4599", "flag")).toEqual({
      url: "http://127.0.0.1:4599",
      source: "flag",
      emulator: true,
    });
    expect(parseControlPlaneEndpoint("http://0x7f000001:4599", "flag").emulator).toBe(true);
  });
});

describe("validateDataPlaneEndpoint", () => {
  test("a bare host gets https:// and is accepted; case is normalised", () => {
    expect(validateDataPlaneEndpoint(HOST, "eu-west-1")).toBe(HOST);
    expect(validateDataPlaneEndpoint(` https://ABC123.Lambda-MicroVM.EU-WEST-1.on.aws `, "eu-west-1")).toBe(
      HOST,
    );
  });

  test("rejects everything upstream rejects, with the upstream message", () => {
    for (const endpoint of [
      `http://${HOST}`,
      "https://example.com",
      "abc.lambda-microvm.us-east-1.on.aws",
      `https://${HOST}/`,
      `https://${HOST}/path`,
      `https://${HOST}?q=1`,
      `https://${HOST}#f`,
      `https://${HOST}:443`,
      `https://${HOST}:8443`,
      `https://${HOST}:`,
      `https://user@${HOST}`,
      `https://user:pw@${HOST}`,
      "https://lambda-microvm.eu-west-1.on.aws",
      `https://${HOST}.evil.com`,
      `https://evil.com\\@${HOST}`,
      `wss://${HOST}`,
      "",
    ]) {
      const error = errorOf(() => validateDataPlaneEndpoint(endpoint, "eu-west-1"));
      expect(error.message).toBe("invalid AWS Lambda MicroVM endpoint for region eu-west-1");
    }
  });
});

describe("dataPlaneTarget", () => {
  test("production: TCP to the endpoint itself over https", () => {
    expect(dataPlaneTarget(HOST, "eu-west-1", undefined)).toEqual({
      protocol: "https:",
      hostname: HOST,
      port: 443,
      hostHeader: HOST,
      origin: `https://${HOST}`,
      emulator: false,
    });
    const real = parseControlPlaneEndpoint("https://lambda.eu-west-1.amazonaws.com", "flag");
    expect(dataPlaneTarget(HOST, "eu-west-1", real).hostname).toBe(HOST);
  });

  test("emulator: TCP to the configured loopback origin, the endpoint only as Host", () => {
    const emulator = parseControlPlaneEndpoint("http://127.0.0.1:4599", "flag");
    expect(dataPlaneTarget(HOST, "eu-west-1", emulator)).toEqual({
      protocol: "http:",
      hostname: "127.0.0.1",
      port: 4599,
      hostHeader: HOST,
      origin: `https://${HOST}`,
      emulator: true,
    });
    const v6 = parseControlPlaneEndpoint("http://[::1]:80", "flag");
    expect(dataPlaneTarget(HOST, "eu-west-1", v6)).toMatchObject({ hostname: "::1", port: 80 });
  });

  test("emulator mode still validates what the control plane returned", () => {
    const emulator = parseControlPlaneEndpoint("http://127.0.0.1:4599", "flag");
    for (const endpoint of ["http://127.0.0.1:4599", "127.0.0.1", "https://evil.example.com", "localhost"]) {
      expect(() => dataPlaneTarget(endpoint, "eu-west-1", emulator)).toThrow(
        "invalid AWS Lambda MicroVM endpoint for region eu-west-1",
      );
    }
  });
});
