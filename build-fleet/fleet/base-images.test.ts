// Base images: only this registry's, and the names the agent gives them.
import { describe, expect, it } from "vitest";

import { parseBaseImage } from "./base-images.ts";

const HOST = "127.0.0.1:8787";

describe("base images", () => {
  it("takes images of this registry by tag, by digest, or neither", () => {
    const digest = `sha256:${"b".repeat(64)}`;
    expect(parseBaseImage(`${HOST}/team/base:1`, HOST)).toEqual({
      ok: true,
      image: {
        reference: `${HOST}/team/base:1`,
        repository: "team/base",
        tag: "1",
        source: `docker://${HOST}/team/base:1`,
        localName: `${HOST}/team/base:1`,
      },
    });
    const latest = parseBaseImage(`${HOST}/team/base`, HOST);
    expect(latest.ok && latest.image.source).toBe(`docker://${HOST}/team/base:latest`);
    const byDigest = parseBaseImage(`${HOST}/team/sub/base:1@${digest}`, HOST);
    expect(byDigest.ok && byDigest.image).toMatchObject({
      repository: "team/sub/base",
      digest,
      source: `docker://${HOST}/team/sub/base@${digest}`,
      localName: `${HOST}/team/sub/base:fleet-${"b".repeat(64)}`,
    });
  });

  it("refuses images from anywhere else, saying there is no internet", () => {
    for (const reference of [
      "debian:12",
      "library/debian",
      "docker.io/library/debian:12",
      "localhost:5000/x/y",
      "ghcr.io/a/b",
    ]) {
      const parsed = parseBaseImage(reference, HOST);
      expect(parsed.ok, reference).toBe(false);
      expect(!parsed.ok && parsed.error).toMatch(/no internet access/);
    }
  });

  it("refuses malformed references", () => {
    expect(parseBaseImage(`${HOST}/Team/base`, HOST).ok).toBe(false);
    expect(parseBaseImage(`${HOST}/team/base:bad tag`, HOST).ok).toBe(false);
    expect(parseBaseImage(`${HOST}/team/base@sha256:abc`, HOST).ok).toBe(false);
  });
});
