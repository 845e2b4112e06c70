import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Claim,
  claimTimestamp,
  createClaim,
  isLeaseId,
  listClaims,
  newLeaseId,
  parseClaim,
  readClaim,
  removeClaim,
  resolveLease,
  saveClaim,
  serializeClaim,
} from "../../../src/core/claims.ts";
import { CrabboxError } from "../../../src/core/errors.ts";
import { claimFile, claimsDir } from "../../../src/core/paths.ts";

let state: string;

beforeEach(() => {
  state = mkdtempSync(join(tmpdir(), "crabbox-claims-"));
});

afterEach(() => {
  rmSync(state, { recursive: true, force: true });
});

async function failure(promise: Promise<unknown> | (() => unknown)): Promise<CrabboxError> {
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (error) {
    if (error instanceof CrabboxError) return error;
    throw error;
  }
  throw new Error("expected a CrabboxError");
}

const base = { provider: "aws-lambda-microvm", providerScope: "eu-west-1", repoRoot: "/repo" };

function writeRaw(name: string, text: string): string {
  mkdirSync(claimsDir(state), { recursive: true });
  const path = join(claimsDir(state), name);
  writeFileSync(path, text);
  return path;
}

test("lease ids are cbx_ + 12 lowercase hex", () => {
  const ids = new Set(Array.from({ length: 50 }, newLeaseId));
  expect(ids.size).toBe(50);
  for (const id of ids) expect(isLeaseId(id)).toBe(true);
  expect(isLeaseId("cbx_0123456789AB")).toBe(false);
  expect(isLeaseId("cbx_0123")).toBe(false);
});

test("timestamps are RFC 3339 UTC with second precision", () => {
  expect(claimTimestamp(new Date("2026-06-01T12:00:00.789Z"))).toBe("2026-06-01T12:00:00Z");
});

describe("claim files", () => {
  test("serialise in upstream's key order, labels sorted, empty optionals omitted", () => {
    const claim: Claim = {
      labels: { zeta: "1", alpha: "2" },
      lastUsedAt: "2026-06-01T12:00:00Z",
      claimedAt: "2026-06-01T12:00:00Z",
      repoRoot: "/abs/repo",
      pond: "",
      providerScope: "eu-west-1",
      cloudID: "mvm-1",
      provider: "aws-lambda-microvm",
      slug: "blue-crab",
      revision: "r",
      leaseID: "cbx_0123456789ab",
      idleTimeoutSeconds: 1800,
    };
    const text = serializeClaim(claim);
    expect(text.endsWith("}\n")).toBe(true);
    expect(Object.keys(JSON.parse(text))).toEqual([
      "leaseID",
      "revision",
      "slug",
      "provider",
      "cloudID",
      "providerScope",
      "repoRoot",
      "claimedAt",
      "lastUsedAt",
      "idleTimeoutSeconds",
      "labels",
    ]);
    expect(Object.keys(JSON.parse(text).labels)).toEqual(["alpha", "zeta"]);
    expect(text).toContain('\n  "leaseID": "cbx_0123456789ab",\n');
  });

  test("fields a later version adds round-trip after the standard ones", async () => {
    const created = await createClaim(state, {
      ...base,
      leaseID: "cbx_00000000000a",
      extra: { state: "provisioning", owner: { pid: 42, host: "h", bootId: "b" } },
    });
    expect(created.state).toBe("provisioning");
    const saved = await saveClaim(state, created.leaseID, (current) => ({
      ...(current as Claim),
      cloudID: "mvm-9",
    }));
    const reread = (await readClaim(state, created.leaseID)) as Claim;
    expect(reread.owner).toEqual({ pid: 42, host: "h", bootId: "b" });
    expect(reread.state).toBe("provisioning");
    expect(reread.cloudID).toBe("mvm-9");
    expect(reread.revision).toBe(saved.revision);
    expect(reread.revision).not.toBe(created.revision);
    const keys = Object.keys(JSON.parse(readFileSync(claimFile(state, created.leaseID), "utf8")));
    expect(keys.slice(-2)).toEqual(["state", "owner"]);
  });

  test("are written 0600 in a 0700 directory, with no temp files left", async () => {
    const claim = await createClaim(state, { ...base, leaseID: "cbx_00000000000b" });
    expect(statSync(claimFile(state, claim.leaseID)).mode & 0o777).toBe(0o600);
    expect(statSync(claimsDir(state)).mode & 0o777).toBe(0o700);
    expect(readdirSync(claimsDir(state))).toEqual(["cbx_00000000000b.json"]);
  });

  test("a corrupt claim is exit 2 naming the file", async () => {
    const path = writeRaw("cbx_00000000000c.json", "{not json");
    const error = await failure(listClaims(state));
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain(path);
    expect(error.message).toContain("not valid JSON");
  });

  test("a claim missing a field is corrupt", () => {
    const error = (() => {
      try {
        parseClaim(JSON.stringify({ leaseID: "cbx_00000000000d" }), "/x/cbx_00000000000d.json");
      } catch (e) {
        return e as CrabboxError;
      }
    })();
    expect(error?.exitCode).toBe(2);
    expect(error?.message).toBe(
      "claim file /x/cbx_00000000000d.json is corrupt: field slug must be a string",
    );
  });

  test("a misfiled claim is refused", async () => {
    const good = JSON.parse(
      serializeClaim({
        ...base,
        leaseID: "cbx_111111111111",
        revision: "",
        slug: "x",
        cloudID: "m",
        claimedAt: "",
        lastUsedAt: "",
      }),
    );
    const path = writeRaw("cbx_222222222222.json", JSON.stringify(good));
    const error = await failure(listClaims(state));
    expect(error.exitCode).toBe(2);
    expect(error.message).toBe(
      `claim file ${path} contains lease id cbx_111111111111; refusing misfiled claim`,
    );
  });

  test("a directory where a claim file is expected is exit 2 naming it (fails for root too)", async () => {
    const path = join(claimsDir(state), "cbx_333333333333.json");
    mkdirSync(path, { recursive: true });
    const error = await failure(listClaims(state));
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain(path);
  });

  test("temp files of an interrupted write are ignored", async () => {
    await createClaim(state, { ...base, leaseID: "cbx_00000000000e" });
    writeRaw(".cbx_00000000000f.json.tmp-abc", "{");
    expect((await listClaims(state)).map((claim) => claim.leaseID)).toEqual(["cbx_00000000000e"]);
  });

  test("removeClaim deletes the file; a missing one is fine", async () => {
    await createClaim(state, { ...base, leaseID: "cbx_000000000010" });
    await removeClaim(state, "cbx_000000000010");
    await removeClaim(state, "cbx_000000000010");
    expect(await readClaim(state, "cbx_000000000010")).toBeUndefined();
  });
});

describe("slug allocation", () => {
  test("a generated slug follows the lease id; a requested one is kept", async () => {
    const generated = await createClaim(state, { ...base, leaseID: "cbx_000000000011" });
    expect(generated.slug).toMatch(/^[a-z]+-[a-z]+$/);
    const requested = await createClaim(state, { ...base, leaseID: "cbx_000000000012", slug: "api" });
    expect(requested.slug).toBe("api");
  });

  test("a taken slug gets a hashed suffix, across providers and regions", async () => {
    await createClaim(state, {
      ...base,
      provider: "other",
      providerScope: "us-west-2",
      leaseID: "cbx_000000000013",
      slug: "api",
    });
    const second = await createClaim(state, { ...base, leaseID: "cbx_000000000014", slug: "api" });
    expect(second.slug).toMatch(/^api-[0-9a-f]{4}$/);
  });

  test("a requested slug aborts on an unreadable claim; a generated one skips it", async () => {
    writeRaw("cbx_00000000001f.json", "{");
    expect(
      (await failure(createClaim(state, { ...base, leaseID: "cbx_000000000015", slug: "api" }))).exitCode,
    ).toBe(2);
    const generated = await createClaim(state, { ...base, leaseID: "cbx_000000000016" });
    expect(generated.slug).toMatch(/^[a-z]+-[a-z]+$/);
  });
});

describe("saveClaim", () => {
  test("refuses a claim owned by another repo unless reclaiming, and then refreshes claimedAt", async () => {
    const first = new Date("2026-01-01T00:00:00Z");
    const later = new Date("2026-01-01T01:00:00Z");
    await createClaim(state, { ...base, leaseID: "cbx_000000000017" }, { now: () => first });
    const other = (current: Claim | undefined) => ({ ...(current as Claim), repoRoot: "/other" });
    const error = await failure(saveClaim(state, "cbx_000000000017", other, { now: () => later }));
    expect(error.exitCode).toBe(2);
    expect(error.message).toBe(
      "lease cbx_000000000017 is claimed by repo /repo; use --reclaim to claim it for /other",
    );
    const reclaimed = await saveClaim(state, "cbx_000000000017", other, { now: () => later, reclaim: true });
    expect(reclaimed.claimedAt).toBe("2026-01-01T01:00:00Z");
  });

  test("keeps claimedAt and moves lastUsedAt on a plain save", async () => {
    const first = new Date("2026-01-01T00:00:00Z");
    const later = new Date("2026-01-01T01:00:00Z");
    await createClaim(state, { ...base, leaseID: "cbx_000000000018" }, { now: () => first });
    const saved = await saveClaim(state, "cbx_000000000018", (c) => ({ ...(c as Claim) }), {
      now: () => later,
    });
    expect(saved.claimedAt).toBe("2026-01-01T00:00:00Z");
    expect(saved.lastUsedAt).toBe("2026-01-01T01:00:00Z");
  });
});

describe("resolveLease", () => {
  const options = {
    provider: "aws-lambda-microvm",
    scope: "eu-west-1",
    scopeFlag: "--aws-lambda-microvm-region",
  };

  async function leased(leaseID: string, slug: string, scope = "eu-west-1", cloudID = "mvm-1") {
    await createClaim(state, { ...base, leaseID, slug, providerScope: scope, cloudID });
  }

  test("by lease id, and by slug case- and punctuation-insensitively", async () => {
    await leased("cbx_000000000019", "lambda-test");
    expect((await resolveLease(state, "cbx_000000000019", options)).slug).toBe("lambda-test");
    expect((await resolveLease(state, "Lambda Test", options)).leaseID).toBe("cbx_000000000019");
    expect((await resolveLease(state, "LAMBDA_test", options)).leaseID).toBe("cbx_000000000019");
  });

  test("not found is exit 4", async () => {
    const error = await failure(resolveLease(state, "nope", options));
    expect(error.exitCode).toBe(4);
    expect(error.message).toBe("aws-lambda-microvm lease not found: nope");
  });

  test("a lease in another region is not found, and the hint names the region and flag", async () => {
    await leased("cbx_00000000001a", "api", "us-west-2");
    const error = await failure(resolveLease(state, "api", options));
    expect(error.exitCode).toBe(4);
    expect(error.hint).toContain("us-west-2");
    expect(error.hint).toContain("--aws-lambda-microvm-region us-west-2");
  });

  test("another provider's claim and a claim without a machine id are not found", async () => {
    await createClaim(state, {
      ...base,
      provider: "hetzner",
      leaseID: "cbx_00000000001b",
      slug: "h",
      cloudID: "1",
    });
    await leased("cbx_00000000001c", "pending", "eu-west-1", "");
    expect((await failure(resolveLease(state, "h", options))).exitCode).toBe(4);
    expect((await failure(resolveLease(state, "pending", options))).exitCode).toBe(4);
  });
});
