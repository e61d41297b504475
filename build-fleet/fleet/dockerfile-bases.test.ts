// Which images a Dockerfile needs, read as the builder reads it.
import { describe, expect, it } from "vitest";

import { dockerfileBases, dockerfileInstructions, expandArgs } from "./dockerfile-bases.ts";

describe("dockerfile bases", () => {
  it("finds FROM images, skipping scratch and stage names, with global ARG defaults", () => {
    const text = [
      "# syntax=docker/dockerfile:1",
      "ARG REGISTRY=127.0.0.1:8787",
      "ARG TAG=1.0",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Dockerfile syntax, not a template
      "FROM --platform=linux/amd64 ${REGISTRY}/team/base:${TAG} AS build",
      "ARG TAG=2.0",
      "RUN make",
      "FROM scratch AS empty",
      "from build as test",
      "FROM $REGISTRY/team/runtime@sha256:" + "a".repeat(64),
      "COPY --from=build /out /out",
      "COPY --from=0 /x /x",
      "COPY --chown=0:0 --from=127.0.0.1:8787/team/tools:3 /bin/tool /bin/tool",
    ].join("\n");
    expect(dockerfileBases(text).images).toEqual([
      "127.0.0.1:8787/team/base:1.0",
      `127.0.0.1:8787/team/runtime@sha256:${"a".repeat(64)}`,
      "127.0.0.1:8787/team/tools:3",
    ]);
  });

  it("joins continuation lines, skips comments inside them, honours the escape directive", () => {
    expect(dockerfileInstructions("FROM \\\n  # comment\n  x/y:1\nRUN a \\\n b\n")).toEqual([
      { keyword: "FROM", args: "x/y:1" },
      { keyword: "RUN", args: "a   b" },
    ]);
    expect(dockerfileBases("# escape=`\nFROM `\n h.io/a/b\n").images).toEqual(["h.io/a/b"]);
  });

  it("expands ARG references like the builder", () => {
    const args = new Map([
      ["A", "1"],
      ["EMPTY", ""],
    ]);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell-style references, not a template
    expect(expandArgs("x$A-${A}-${B:-d}-${EMPTY:-e}-${A:+set}-${B:+unset}-$B.", args)).toBe(
      "x1-1-d-e-set--.",
    );
  });
});
