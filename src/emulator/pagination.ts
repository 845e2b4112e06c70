/** `maxResults` (1–50) and an opaque `nextToken` (a base64url offset), as every List operation takes them. */

import { Violations } from "./validate.ts";
import { ApiError } from "./wire.ts";

const DEFAULT_PAGE = 50;

export function paginate<T>(items: T[], query: URLSearchParams): { items: T[]; nextToken?: string } {
  const v = new Violations();
  const rawMax = query.get("maxResults");
  let max = DEFAULT_PAGE;
  if (rawMax !== null) {
    const parsed = Number(rawMax);
    if (!Number.isInteger(parsed))
      throw new ApiError("SerializationException", 400, "maxResults must be an integer");
    v.integer(parsed, "maxResults", { min: 1, max: 50 });
    max = parsed;
  }
  v.throwIfAny();
  let offset = 0;
  const token = query.get("nextToken");
  if (token !== null) {
    const decoded = decodeToken(token);
    if (decoded === undefined || decoded > items.length) {
      throw new ApiError("ValidationException", 400, "The provided nextToken is not valid.");
    }
    offset = decoded;
  }
  const page = items.slice(offset, offset + max);
  const next = offset + max;
  return next < items.length ? { items: page, nextToken: encodeToken(next) } : { items: page };
}

function encodeToken(offset: number): string {
  return Buffer.from(JSON.stringify({ o: offset })).toString("base64url");
}

function decodeToken(token: string): number | undefined {
  try {
    const { o } = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { o: unknown };
    return typeof o === "number" && Number.isInteger(o) && o >= 0 ? o : undefined;
  } catch {
    return undefined;
  }
}
