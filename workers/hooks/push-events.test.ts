// Reading providers' payloads: which commit a push builds, deletions, and delivery ids.
import { describe, expect, it } from "vitest";
import { deliveryIdOf, parseHookEvent } from "./push-events.ts";

const COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b";
const TAG_OBJECT = "c3f1b3ad0e0e2a7b0c2f6cd7f1d0f8b9a2e4d6c1";
const ZERO = "0".repeat(40);
const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

describe("parseHookEvent", () => {
  it("builds the commit an annotated GitHub tag points at, not the tag object", () => {
    const event = parseHookEvent(
      "github",
      new Headers({ "X-GitHub-Event": "push" }),
      bytes({
        ref: "refs/tags/v1",
        after: TAG_OBJECT,
        deleted: false,
        head_commit: { id: COMMIT },
        repository: { default_branch: "main" },
      }),
    );
    expect(event).toEqual({
      kind: "push",
      push: { ref: "refs/tags/v1", commit: COMMIT, deleted: false, defaultBranch: "main" },
    });
  });

  it("reads GitLab's checkout_sha and sees a deletion in an all-zero after", () => {
    const headers = new Headers({ "X-Gitlab-Event": "Tag Push Hook" });
    expect(
      parseHookEvent(
        "gitlab",
        headers,
        bytes({ ref: "refs/tags/v2", after: TAG_OBJECT, checkout_sha: COMMIT, project: {} }),
      ),
    ).toMatchObject({ kind: "push", push: { commit: COMMIT, deleted: false } });
    expect(
      parseHookEvent(
        "gitlab",
        headers,
        bytes({ ref: "refs/tags/v2", after: ZERO, checkout_sha: null }),
      ),
    ).toMatchObject({ kind: "push", push: { deleted: true } });
  });

  it("says what is wrong with a payload it cannot use", () => {
    const generic = (value: unknown) => parseHookEvent("generic", new Headers(), bytes(value));
    expect(generic([])).toEqual({ kind: "invalid", problem: "the body is not a JSON object" });
    expect(generic({ ref: "main", commit: COMMIT })).toMatchObject({ kind: "invalid" });
    expect(generic({ ref: "refs/heads/main", commit: "HEAD" })).toMatchObject({
      kind: "invalid",
      problem: expect.stringContaining("not a full hexadecimal commit id"),
    });
    expect(generic({ ref: "refs/heads/a\u0000b", commit: COMMIT })).toMatchObject({
      kind: "invalid",
    });
    expect(
      parseHookEvent("generic", new Headers(), new Uint8Array([0xff, 0x7b, 0x7d])),
    ).toMatchObject({ kind: "invalid", problem: "the body is not UTF-8 JSON" });
  });
});

describe("deliveryIdOf", () => {
  it("takes each provider's header and refuses odd ones", () => {
    expect(deliveryIdOf("github", new Headers({ "X-GitHub-Delivery": "abc" }))).toEqual({
      id: "abc",
    });
    expect(deliveryIdOf("gitlab", new Headers({ "X-Gitlab-Event-UUID": "u-1" }))).toEqual({
      id: "u-1",
    });
    // GitLab's Idempotency-Key (the same across retries) wins over the event UUID.
    expect(
      deliveryIdOf(
        "gitlab",
        new Headers({ "Idempotency-Key": "k-1", "X-Gitlab-Event-UUID": "u-1" }),
      ),
    ).toEqual({ id: "k-1" });
    expect(deliveryIdOf("generic", new Headers())).toEqual({
      problem: "no X-Registry-Delivery header",
    });
    expect(deliveryIdOf("generic", new Headers({ "X-Registry-Delivery": "a b" }))).toHaveProperty(
      "problem",
    );
    expect(
      deliveryIdOf("generic", new Headers({ "X-Registry-Delivery": "x".repeat(201) })),
    ).toHaveProperty("problem");
  });
});
