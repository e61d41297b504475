import { env, runDurableObjectAlarm } from "cloudflare:test";
import { it } from "vitest";
import { repository, repositoryState } from "./gc-fixtures.ts";
import { api, pushBlob, randomBytes } from "./helpers.ts";

it("probe", { timeout: 120_000 }, async () => {
  const t = () => Date.now();
  let s = t();
  for (let i = 0; i < 50; i++)
    await api(`/v2/probe/x/blobs/sha256:${"a".repeat(64)}`, { method: "HEAD" });
  console.log("PROBE head", (t() - s) / 50);
  s = t();
  for (let i = 0; i < 50; i++) await pushBlob("probe/x", randomBytes(100));
  console.log("PROBE upload", (t() - s) / 50);
  s = t();
  for (let i = 0; i < 50; i++) await repositoryState("probe/x");
  console.log("PROBE state", (t() - s) / 50);
  s = t();
  for (let i = 0; i < 50; i++) await env.BLOBS.list();
  console.log("PROBE list", (t() - s) / 50);
  s = t();
  for (let i = 0; i < 50; i++) await runDurableObjectAlarm(repository("probe/x"));
  console.log("PROBE alarm", (t() - s) / 50);
  s = t();
  for (let i = 0; i < 50; i++)
    await repository("probe/x").getBlob(`sha256:${"a".repeat(64)}` as never);
  console.log("PROBE rpc", (t() - s) / 50);
});
