/** Pure pieces of the emulator: fault specs, AWS validation wording, aws-chunked, zip, COPY mapping. */
import { describe, expect, test } from "bun:test";
import { createClock } from "../../../src/emulator/clock.ts";
import { dataPlaneHost } from "../../../src/emulator/dataplane.ts";
import { FaultSet, parseFault } from "../../../src/emulator/faults.ts";
import { copiedFiles } from "../../../src/emulator/image-build.ts";
import { paginate } from "../../../src/emulator/pagination.ts";
import { signingRegion } from "../../../src/emulator/router.ts";
import { AwsChunkedDecoder, objectPath } from "../../../src/emulator/s3.ts";
import { allowsPort } from "../../../src/emulator/tokens.ts";
import { Violations } from "../../../src/emulator/validate.ts";
import { ApiError } from "../../../src/emulator/wire.ts";
import { parseRunnerDockerfile } from "../../../src/image/dockerfile.ts";
import { readZip, writeZip } from "../../../src/image/zip.ts";

describe("fault specs", () => {
  test("kinds, values, targets and limits", () => {
    expect(parseFault("throttle")).toEqual({ spec: "throttle", kind: "throttle" });
    expect(parseFault("throttle@RunMicrovm,count=2")).toMatchObject({ target: "RunMicrovm", count: 2 });
    expect(parseFault("state-lag-ms=1500@GetMicrovm")).toMatchObject({ value: 1500, target: "GetMicrovm" });
    expect(parseFault("first-request-502,rate=0.32")).toMatchObject({ rate: 0.32 });
    expect(parseFault("redirect=https://example.com/x@/v1/exec")).toMatchObject({
      value: "https://example.com/x",
      target: "/v1/exec",
    });
    expect(parseFault("endpoint=evil.example.com")).toMatchObject({ value: "evil.example.com" });
    expect(parseFault("runner-crash@RunMicrovm").target).toBe("RunMicrovm");
    expect(parseFault("runner-crash@/v1/exec").target).toBe("/v1/exec");
  });

  test("bad specs say what is wrong", () => {
    expect(() => parseFault("explode")).toThrow("unknown fault 'explode'");
    expect(() => parseFault("throttle=3")).toThrow("takes no value");
    expect(() => parseFault("state-lag-ms")).toThrow("needs =<value>");
    expect(() => parseFault("state-lag-ms=soon")).toThrow("is not a number");
    expect(() => parseFault("throttle@/v1/exec")).toThrow("control-plane operations");
    expect(() => parseFault("cut-stream-after=10@GetMicrovm")).toThrow("data-plane paths");
    expect(() => parseFault("throttle,count=0")).toThrow("bad option");
    expect(() => parseFault("throttle,count=1,rate=0.5")).toThrow("bad option");
  });

  test("counts are consumed; targets and explicit matching", () => {
    const set = new FaultSet(["throttle@GetMicrovm,count=2", "runner-crash"]);
    expect(set.take("throttle", "ListMicrovms")).toBeUndefined();
    expect(set.take("throttle", "GetMicrovm")).toBeDefined();
    expect(set.take("throttle", "GetMicrovm")).toBeDefined();
    expect(set.take("throttle", "GetMicrovm")).toBeUndefined();
    expect(set.take("runner-crash", "/v1/exec")).toBeDefined();
    expect(set.take("runner-crash", "RunMicrovm", { explicit: true })).toBeUndefined();
    expect(new FaultSet(["first-request-502,rate=0"]).take("first-request-502", "/health")).toBeUndefined();
  });
});

describe("validation wording", () => {
  test("Coral's message format, values hidden for sensitive members", () => {
    const v = new Violations();
    v.string("x".repeat(5), "runHookPayload", { max: 4, sensitive: true });
    v.integer(30, "idlePolicy.maxIdleDurationSeconds", { min: 60 });
    v.integer(undefined, "expirationInMinutes", { required: true });
    let message = "";
    try {
      v.throwIfAny();
    } catch (error) {
      expect(error).toBeInstanceOf(ApiError);
      message = (error as ApiError).message;
    }
    expect(message).toBe(
      "3 validation errors detected: Value at 'runHookPayload' failed to satisfy constraint: Member must have length less than or equal to 4; " +
        "Value '30' at 'idlePolicy.maxIdleDurationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60; " +
        "Value null at 'expirationInMinutes' failed to satisfy constraint: Member must not be null",
    );
  });

  test("a wrong JSON type is a SerializationException, a bad union a violation", () => {
    const v = new Violations();
    expect(() => v.integer("60", "maximumDurationInSeconds")).toThrow("Expected an integer");
    expect(
      v.union({ port: 1, allPorts: {} }, "allowedPorts.1.member", ["port", "range", "allPorts"]),
    ).toBeUndefined();
    expect(v.empty).toBe(false);
  });
});

describe("wire helpers", () => {
  test("Region from the SigV4 credential scope", () => {
    expect(
      signingRegion(
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/lambda/aws4_request, SignedHeaders=host, Signature=x",
      ),
    ).toBe("eu-west-1");
    expect(signingRegion(null)).toBeUndefined();
    expect(signingRegion("Bearer x")).toBeUndefined();
  });

  test("data-plane hosts", () => {
    expect(dataPlaneHost("abc-1.lambda-microvm.us-east-1.on.aws:4599")).toEqual({
      label: "abc-1",
      region: "us-east-1",
    });
    expect(dataPlaneHost("ABC.LAMBDA-MICROVM.us-west-2.on.aws.")).toEqual({
      label: "abc",
      region: "us-west-2",
    });
    expect(dataPlaneHost("127.0.0.1:4599")).toBeUndefined();
    expect(dataPlaneHost("x.lambda-microvm.us-east-1.on.aws.evil.com")).toBeUndefined();
  });

  test("port scopes", () => {
    expect(allowsPort([{ port: 8080 }], 8080)).toBe(true);
    expect(allowsPort([{ port: 8080 }], 8081)).toBe(false);
    expect(allowsPort([{ range: { startPort: 9000, endPort: 9001 } }], 9001)).toBe(true);
    expect(allowsPort([{ allPorts: {} }], 1)).toBe(true);
    expect(allowsPort([], 8080)).toBe(false);
  });

  test("pagination tokens are opaque offsets; garbage is refused", () => {
    const items = [1, 2, 3, 4, 5];
    const first = paginate(items, new URLSearchParams("maxResults=2"));
    expect(first.items).toEqual([1, 2]);
    const second = paginate(
      items,
      new URLSearchParams({ maxResults: "2", nextToken: first.nextToken as string }),
    );
    expect(second.items).toEqual([3, 4]);
    expect(() => paginate(items, new URLSearchParams("nextToken=zzz"))).toThrow(ApiError);
    expect(() => paginate(items, new URLSearchParams("maxResults=0"))).toThrow(ApiError);
  });

  test("scaled timeouts never drop below their floor", () => {
    const clock = createClock(0.01);
    expect(clock.ms(60)).toBe(600);
    expect(clock.timeoutMs(10, 5)).toBe(5000);
    expect(clock.timeoutMs(2, 5)).toBe(2000);
    expect(createClock(1).timeoutMs(10, 5)).toBe(10_000);
  });
});

describe("S3 pieces", () => {
  test("aws-chunked: signed and unsigned chunks, split anywhere, trailers", () => {
    const body = `4;chunk-signature=${"a".repeat(64)}\r\nabcd\r\n3\r\nefg\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n`;
    const bytes = new TextEncoder().encode(body);
    for (const split of [1, 3, 7, bytes.length]) {
      const decoder = new AwsChunkedDecoder();
      const out: string[] = [];
      for (let i = 0; i < bytes.length; i += split) {
        for (const piece of decoder.feed(bytes.subarray(i, i + split)))
          out.push(new TextDecoder().decode(piece));
      }
      expect(out.join("")).toBe("abcdefg");
      expect(decoder.finish()).toEqual({ "x-amz-checksum-crc32": "AAAA" });
    }
    const truncated = new AwsChunkedDecoder();
    truncated.feed(new TextEncoder().encode("4\r\nab"));
    expect(() => truncated.finish()).toThrow("incomplete");
  });

  test("object paths refuse escapes", () => {
    expect(objectPath("/s3", "bucket", "a/b.zip")).toBe("/s3/bucket/a/b.zip");
    expect(objectPath("/s3", "bucket", "../x")).toBeUndefined();
    expect(objectPath("/s3", "bucket", "a//b")).toBeUndefined();
    expect(objectPath("/s3", "..", "x")).toBeUndefined();
  });
});

describe("image artifacts", () => {
  test("zip round trip keeps names, bytes and modes; members are written sorted by name", () => {
    const data = new TextEncoder().encode("x".repeat(10_000));
    const entries = readZip(
      writeZip([
        { name: "dir/runner", data, mode: 0o755 },
        { name: "Dockerfile", data },
      ]),
    );
    expect(entries.map((entry) => [entry.name, entry.data.length, entry.mode])).toEqual([
      ["Dockerfile", 10_000, 0o644],
      ["dir/runner", 10_000, 0o755],
    ]);
    expect(() => readZip(new Uint8Array(100))).toThrow("not a zip archive");
  });

  test("COPY places files where CMD looks for them", () => {
    const dockerfile = parseRunnerDockerfile(`FROM base
COPY crabbox-runner /usr/local/bin/crabbox-runner
COPY bin/ /opt/tools/
COPY a.txt b.txt /etc/app/
WORKDIR /srv
COPY rel.sh ./scripts/
CMD ["/usr/local/bin/crabbox-runner"]
`);
    const placed = copiedFiles(dockerfile, [
      "crabbox-runner",
      "bin/x",
      "bin/sub/y",
      "a.txt",
      "b.txt",
      "rel.sh",
    ]);
    expect(Object.fromEntries(placed)).toEqual({
      "/usr/local/bin/crabbox-runner": "crabbox-runner",
      "/opt/tools/x": "bin/x",
      "/opt/tools/sub/y": "bin/sub/y",
      "/etc/app/a.txt": "a.txt",
      "/etc/app/b.txt": "b.txt",
      "/srv/scripts/rel.sh": "rel.sh",
    });
  });
});
