import type { ImageClients } from "./clients.ts";

/** `crabbox image list` and `crabbox image status`: what the account's MicroVM images are and can run. */

export interface ImageSummary {
  name: string;
  imageArn: string;
  state: string;
  latestActiveImageVersion: string | undefined;
  latestFailedImageVersion: string | undefined;
  /** ISO 8601, when AWS reported it. */
  createdAt: string | undefined;
}

export interface ImageVersionView {
  imageVersion: string;
  state: string;
  status: string;
  stateReason: string | undefined;
  createdAt: string | undefined;
  codeArtifact: string | undefined;
  /** The image can run this version (image settled, version SUCCESSFUL and ACTIVE). */
  runnable: boolean;
}

export interface ImageStatus extends ImageSummary {
  versions: ImageVersionView[];
}

function iso(value: Date | undefined): string | undefined {
  return value instanceof Date && Number.isFinite(value.getTime()) ? value.toISOString() : undefined;
}

export async function listImages(clients: ImageClients): Promise<ImageSummary[]> {
  const sdk = await import("@aws-sdk/client-lambda-microvms");
  const images: ImageSummary[] = [];
  let nextToken: string | undefined;
  do {
    const page = await clients.call("ListMicrovmImages", undefined, () =>
      clients.microvms.send(new sdk.ListMicrovmImagesCommand({ maxResults: 50, nextToken })),
    );
    for (const item of page.items ?? []) {
      images.push({
        name: item.name ?? "",
        imageArn: item.imageArn ?? "",
        state: item.state ?? "UNKNOWN",
        latestActiveImageVersion: item.latestActiveImageVersion || undefined,
        latestFailedImageVersion: item.latestFailedImageVersion || undefined,
        createdAt: iso(item.createdAt),
      });
    }
    nextToken = page.nextToken || undefined;
  } while (nextToken);
  return images.sort((a, b) => a.name.localeCompare(b.name));
}

/** One image (by ARN or name) with its versions, newest last; `version` narrows to one. */
export async function imageStatus(
  clients: ImageClients,
  identifier: string,
  version?: string,
): Promise<ImageStatus> {
  const sdk = await import("@aws-sdk/client-lambda-microvms");
  const image = await clients.call("GetMicrovmImage", identifier, () =>
    clients.microvms.send(new sdk.GetMicrovmImageCommand({ imageIdentifier: identifier })),
  );
  const settled = image.state === "CREATED" || image.state === "UPDATED";
  const items = [];
  if (version !== undefined) {
    items.push(
      await clients.call("GetMicrovmImageVersion", `${identifier}:${version}`, () =>
        clients.microvms.send(
          new sdk.GetMicrovmImageVersionCommand({ imageIdentifier: identifier, imageVersion: version }),
        ),
      ),
    );
  } else {
    let nextToken: string | undefined;
    do {
      const page = await clients.call("ListMicrovmImageVersions", identifier, () =>
        clients.microvms.send(
          new sdk.ListMicrovmImageVersionsCommand({ imageIdentifier: identifier, maxResults: 50, nextToken }),
        ),
      );
      items.push(...(page.items ?? []));
      nextToken = page.nextToken || undefined;
    } while (nextToken);
  }
  const versions = items.map((item) => {
    const state = item.state ?? "UNKNOWN";
    const status = item.status ?? "UNKNOWN";
    return {
      imageVersion: item.imageVersion ?? "",
      state,
      status,
      stateReason: item.stateReason || undefined,
      createdAt: iso(item.createdAt),
      codeArtifact: item.codeArtifact && "uri" in item.codeArtifact ? item.codeArtifact.uri : undefined,
      runnable: settled && state === "SUCCESSFUL" && status === "ACTIVE",
    };
  });
  return {
    name: image.name ?? identifier,
    imageArn: image.imageArn ?? identifier,
    state: image.state ?? "UNKNOWN",
    latestActiveImageVersion: image.latestActiveImageVersion || undefined,
    latestFailedImageVersion: image.latestFailedImageVersion || undefined,
    createdAt: iso(image.createdAt),
    versions,
  };
}

/** Fixed-width text table (no colours: it is read in CI logs as often as in terminals). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, index) =>
    Math.max(title.length, ...rows.map((row) => (row[index] ?? "").length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, index) => (index === cells.length - 1 ? cell : cell.padEnd(widths[index] ?? 0)))
      .join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}
