// Garbage collection lowers namespace usage through the same manifest_refs triggers as a delete:
// a collected manifest's blobs stop counting, unless another repository of the namespace keeps
// them. The clock and the alarms are driven (gc-fixtures.ts).
import { env } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { namespaceObjectName } from "../../durable-objects/namespace-object.ts";
import {
  advance,
  collect,
  freezeClock,
  GRACE_MS,
  hasManifest,
  releaseClock,
} from "./gc-fixtures.ts";
import { pushImage, randomBytes } from "./helpers.ts";
import { uniqueName } from "./identity-fixtures.ts";

beforeAll(freezeClock);
afterAll(releaseClock);

function usage(namespace: string) {
  return env.NAMESPACE.getByName(namespaceObjectName(namespace)).describe();
}

describe("namespace usage under garbage collection", () => {
  it("drops when an untagged manifest is collected, keeping a layer another repository lists", async () => {
    const ns = uniqueName("q");
    const shared = randomBytes(3000);
    const kept = await pushImage(`${ns}/kept`, { tag: "v1", layers: [shared] });
    const before = (await usage(ns)).usageBytes;
    const garbage = await pushImage(`${ns}/scratch`, { layers: [shared, randomBytes(5000)] });
    const withGarbage = (await usage(ns)).usageBytes;
    expect(withGarbage).toBeGreaterThan(before + 5000);

    advance(GRACE_MS + 1000);
    await collect(`${ns}/scratch`);
    expect(await hasManifest(`${ns}/scratch`, garbage.digest)).toBe(false);
    expect(await hasManifest(`${ns}/kept`, kept.digest)).toBe(true);
    // The scratch image's own config and layer go; the shared layer stays counted once.
    expect(await usage(ns)).toMatchObject({ usageBytes: before, blobs: 2 });
  });
});
