import type { DoctorCheck, LeaseListing, LeaseStatus } from "../providers/provider.ts";

/**
 * The text and JSON shapes of status, list and doctor, byte-compatible with upstream Crabbox
 * (§2.1, §2.4, §2.5) because scripts and the live smoke parse them.
 */

function sortedRecord(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** One-line status JSON; the empty ssh fields stay because upstream scripts read them. */
export function statusJson(status: LeaseStatus): string {
  return JSON.stringify({
    id: status.id,
    slug: status.slug,
    provider: status.provider,
    target: status.target,
    state: status.state,
    serverId: status.serverId,
    serverType: status.serverType,
    host: status.host,
    network: status.network,
    sshHost: "",
    sshUser: "",
    sshPort: "",
    sshKey: "",
    labels: sortedRecord(status.labels),
    hasHost: false,
    ready: status.ready,
  });
}

export function statusText(status: LeaseStatus): string {
  return (
    `${status.id} slug=${status.slug || "-"} provider=${status.provider} target=${status.target} windows_mode=-` +
    ` state=${status.state} type=${status.serverType} host=${status.host} pond=${status.labels.pond || "-"}` +
    ` network=${status.network} ready=${status.ready} has_host=false idle_for=- idle_timeout=- expires=-`
  );
}

/** Upstream's server object; `CloudID`, `Provider`, `HostID` are capitalised there (no JSON tags). */
export function listingObject(provider: string, listing: LeaseListing): Record<string, unknown> {
  return {
    CloudID: listing.cloudId,
    Provider: provider,
    HostID: "",
    id: 0,
    name: listing.name,
    status: listing.status,
    labels: sortedRecord(listing.labels),
    public_net: { ipv4: { ip: listing.endpoint } },
    private_net: { ipv4: { ip: "" } },
    server_type: { name: listing.imageVersion },
  };
}

function pad(text: string, width: number): string {
  return text.padEnd(width);
}

export function listingText(listing: LeaseListing): string {
  const labels = listing.labels;
  // An orphan (list --remote) has no lease, slug or keep label; its age is what tells a user about it.
  if (labels.orphan === "true") {
    return (
      `${pad(listing.cloudId, 20)} ${pad(listing.name, 28)} ${pad(listing.status, 12)} ${pad(listing.imageVersion, 14)} ` +
      `${pad(listing.endpoint, 15)} orphan=true age=${labels.age ?? "-"}`
    );
  }
  return (
    `${pad(listing.cloudId, 20)} ${pad(listing.name, 28)} ${pad(listing.status, 12)} ${pad(listing.imageVersion, 14)} ` +
    `${pad(listing.endpoint, 15)} lease=${labels.lease ?? ""} slug=${labels.slug || "-"} keep=${labels.keep ?? ""} target=${labels.target ?? ""}`
  );
}

/** One doctor check as JSON: `provider` is lifted from details, empty message/details dropped. */
export function doctorCheckObject(check: DoctorCheck): Record<string, unknown> {
  const object: Record<string, unknown> = { status: check.status, check: check.check };
  if (check.details?.provider) object.provider = check.details.provider;
  if (check.message) object.message = check.message;
  if (check.details && Object.keys(check.details).length > 0) object.details = sortedRecord(check.details);
  return object;
}

export function doctorJson(provider: string, checks: readonly DoctorCheck[]): string {
  return JSON.stringify({ ok: doctorOk(checks), provider, checks: checks.map(doctorCheckObject) });
}

export function doctorText(check: DoctorCheck): string {
  return check.message
    ? `${pad(check.status, 7)} ${pad(check.check, 8)} ${check.message}`
    : `${pad(check.status, 7)} ${check.check}`;
}

export function doctorOk(checks: readonly DoctorCheck[]): boolean {
  return checks.every((check) => check.status !== "failed" && check.status !== "missing");
}
