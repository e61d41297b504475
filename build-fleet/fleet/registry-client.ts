// The fleet's registry side of a build, all in the trusted process: exchanging the build token for
// a pull token, fetching base images and uploaded sources, and pushing the result with skopeo.
// Tokens go to skopeo as arguments of a short-lived child, never into the sandbox.
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

import { run } from "../lib/process.ts";
import type { BaseImage } from "./base-images.ts";

/** All manifest types this registry serves, for re-tagging by digest. */
const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

export interface RegistryClientOptions {
  /** The registry's base URL, e.g. `http://127.0.0.1:8787`. */
  url: URL;
  /** Environment of the skopeo children (PATH and little else). */
  env: NodeJS.ProcessEnv;
}

export interface StepOptions {
  signal: AbortSignal;
  onLine?(stream: "stdout" | "stderr", line: string): void;
}

export class RegistryClient {
  readonly url: URL;
  readonly #env: NodeJS.ProcessEnv;

  constructor(options: RegistryClientOptions) {
    this.url = options.url;
    this.#env = options.env;
  }

  /** `host[:port]` as image references name this registry. */
  get host(): string {
    return this.url.host;
  }

  /** Plain HTTP registries (local) need skopeo's TLS verification off; HTTPS ones keep it. */
  get #tlsVerify(): string {
    return this.url.protocol === "https:" ? "true" : "false";
  }

  /** A short pull token for `repositories`, from the token service, on the build's rights. */
  async pullToken(
    buildToken: string,
    repositories: string[],
    signal: AbortSignal,
  ): Promise<string> {
    const url = new URL("/v2/auth", this.url);
    for (const repository of repositories)
      url.searchParams.append("scope", `repository:${repository}:pull`);
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${buildToken}` },
      signal,
    });
    if (!response.ok) {
      throw new Error(
        `the token service refused to let this build pull ${repositories.join(", ")} (${response.status})`,
      );
    }
    const body = (await response.json()) as { token?: unknown; access_token?: unknown };
    const token = typeof body.token === "string" ? body.token : body.access_token;
    if (typeof token !== "string") throw new Error("the token service answered without a token");
    return token;
  }

  /** Copies a base image into `destination` as a `dir:` image (manifest bytes kept as served). */
  async fetchBase(
    image: BaseImage,
    pullToken: string,
    destination: string,
    options: StepOptions,
  ): Promise<void> {
    const result = await run(
      "skopeo",
      [
        "copy",
        "--quiet",
        "--retry-times=2",
        `--src-tls-verify=${this.#tlsVerify}`,
        "--src-registry-token",
        pullToken,
        image.source,
        `dir:${destination}`,
      ],
      { env: this.#env, signal: options.signal, onLine: options.onLine },
    );
    if (result.stopped === "aborted") throw new DOMException("aborted", "AbortError");
    if (result.code !== 0) {
      throw new Error(`cannot pull base image ${image.reference}: ${lastLine(result.stderr)}`);
    }
  }

  /**
   * Pushes the oci-archive to `repository:<first tag>` with skopeo, then points the other tags at
   * the same manifest (a manifest GET and PUT each: no blob is sent twice). Returns its digest.
   */
  async push(
    archive: string,
    repository: string,
    tags: string[],
    buildToken: string,
    digestFile: string,
    options: StepOptions,
  ): Promise<string> {
    const [first, ...others] = tags;
    if (first === undefined) throw new Error("the build names no tag to push");
    const result = await run(
      "skopeo",
      [
        "copy",
        "--retry-times=2",
        `--dest-tls-verify=${this.#tlsVerify}`,
        "--dest-registry-token",
        buildToken,
        "--digestfile",
        digestFile,
        `oci-archive:${archive}`,
        `docker://${this.host}/${repository}:${first}`,
      ],
      { env: this.#env, signal: options.signal, onLine: options.onLine },
    );
    if (result.stopped === "aborted") throw new DOMException("aborted", "AbortError");
    if (result.code !== 0)
      throw new Error(`push to ${repository}:${first} failed: ${lastLine(result.stderr)}`);
    const digest = (await readFile(digestFile, "utf8")).trim();
    if (!/^sha256:[0-9a-f]{64}$/.test(digest))
      throw new Error(`skopeo reported no digest (${digest})`);
    for (const tag of others) {
      await this.#tag(repository, digest, tag, buildToken, options.signal);
      options.onLine?.("stdout", `tagged ${repository}:${tag} → ${digest}`);
    }
    return digest;
  }

  async #tag(
    repository: string,
    digest: string,
    tag: string,
    token: string,
    signal: AbortSignal,
  ): Promise<void> {
    const manifestUrl = (reference: string) =>
      new URL(`/v2/${repository}/manifests/${reference}`, this.url);
    const got = await fetch(manifestUrl(digest), {
      headers: { Authorization: `Bearer ${token}`, Accept: MANIFEST_ACCEPT },
      signal,
    });
    if (!got.ok)
      throw new Error(`cannot read back ${repository}@${digest} to tag it (${got.status})`);
    const body = new Uint8Array(await got.arrayBuffer());
    const put = await fetch(manifestUrl(tag), {
      method: "PUT",
      headers: {
        Authorization: `Bearer ${token}`,
        "Content-Type":
          got.headers.get("Content-Type") ?? "application/vnd.oci.image.manifest.v1+json",
      },
      body,
      signal,
    });
    if (put.status !== 201) {
      throw new Error(
        `tagging ${repository}:${tag} failed (${put.status}): ${(await put.text()).slice(0, 300)}`,
      );
    }
  }

  /**
   * Downloads an uploaded build source (a manual build's Dockerfile or context archive) from
   * `GET /fleet/v1/builds/<id>/source` with the build's own token, into `destination`.
   */
  async downloadSource(
    buildId: string,
    buildToken: string,
    destination: string,
    signal: AbortSignal,
  ): Promise<number> {
    const url = new URL(`/fleet/v1/builds/${encodeURIComponent(buildId)}/source`, this.url);
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${buildToken}` },
      signal,
    });
    if (!response.ok || response.body === null) {
      throw new Error(`cannot download the build's uploaded source (${response.status})`);
    }
    let bytes = 0;
    const counted = Readable.fromWeb(
      response.body as import("node:stream/web").ReadableStream<Uint8Array>,
    );
    counted.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    await pipeline(counted, createWriteStream(destination, { mode: 0o600 }));
    return bytes;
  }
}

function lastLine(text: string): string {
  const lines = text.trim().split("\n");
  return (lines.at(-1) ?? "").trim() || "no error output";
}
